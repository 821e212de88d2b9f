"""Glue between the catalog, the ops' array inputs and run tracking, shared by the tasks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa

from catalog.datasets import Catalog, Ids, arrow_ids
from infra.tracking import RunLogger

Rows = TypeVar("Rows", pd.DataFrame, np.ndarray)


def flat_lists(column: pa.ChunkedArray, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """A list column as its rows end to end and where each row ends (no Python per item)."""
    array = column.combine_chunks()
    offsets = array.offsets.to_numpy()
    values = array.values.to_numpy(zero_copy_only=False)[offsets[0] : offsets[-1]]
    return values.astype(dtype, copy=False), offsets[1:] - offsets[0]


def split_lists(column: pa.ChunkedArray, dtype: type) -> list[np.ndarray]:
    """A list column as one numpy array per row, by slicing the flat values."""
    values, ends = flat_lists(column, dtype)
    return np.split(values, ends[:-1]) if len(ends) else []


def same_order(ids: Ids, txn_ids: Ids) -> bool:
    """Whether ``ids`` are ``txn_ids``, in that order (NumPy or Arrow strings, alike).

    Ingest writes every table in one order, so a task compares the ids before it looks rows
    up by id: a comparison costs a fraction of a lookup by a hash of the ids
    (benchmarks/README.md).
    """
    if len(ids) != len(txn_ids):
        return False
    if isinstance(ids, np.ndarray) and isinstance(txn_ids, np.ndarray):
        return bool(np.array_equal(ids, txn_ids))
    return arrow_ids(ids).equals(arrow_ids(txn_ids))


def in_order(rows: Rows, ids: Ids, txn_ids: Ids) -> Rows:
    """``rows`` (a frame or an array), one per id of ``ids``, in the order of ``txn_ids``.

    Compared first (`same_order`); else looked up by id, and every one of ``txn_ids`` must
    be among ``ids``.
    """
    if same_order(ids, txn_ids):
        return rows
    wanted = np.asarray(txn_ids)
    at = pd.Index(np.asarray(ids)).get_indexer(wanted)
    if (at < 0).any():
        missing = wanted[at < 0]
        raise KeyError(f"{len(missing)} txn_id not found, the first: {missing[0]!r}")
    return rows.iloc[at] if isinstance(rows, pd.DataFrame) else rows[at]


def join_on_ids(view: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
    """``view.join(other.set_index("txn_id"), on="txn_id")``; by position in the same order."""
    if same_order(other["txn_id"], view["txn_id"]):
        return pd.concat([view, other.drop(columns="txn_id").set_axis(view.index)], axis=1)
    return view.join(other.set_index("txn_id"), on="txn_id")


def read_sequences(output_root: str) -> pa.Table:
    """The ``sequences`` dataset's ``txn_id``, ``tokens`` and ``dwell`` columns, as written."""
    return Catalog(output_root).load_table("sequences", ["txn_id", "tokens", "dwell"])


def sequence_arrays(
    table: pa.Table,
) -> tuple[np.ndarray, Sequence[np.ndarray], Sequence[np.ndarray]]:
    """``txn_id``, token ids and dwell seconds of a :func:`read_sequences` table's rows.

    One array per row and column: at 1M sessions this split costs ~2 s, so a caller that
    needs only some rows takes them from the table first, and whole-column work reads the
    columns with :meth:`catalog.datasets.Catalog.load_lists` instead.
    """
    txn_ids = table.column("txn_id").to_numpy(zero_copy_only=False).astype(str)
    return (
        txn_ids,
        split_lists(table.column("tokens"), np.int64),
        split_lists(table.column("dwell"), np.float32),
    )


def load_sequences(
    output_root: str, limit: int | None = None
) -> tuple[np.ndarray, Sequence[np.ndarray], Sequence[np.ndarray]]:
    """``txn_id``, token ids and dwell seconds, in the order ingest wrote them."""
    table = read_sequences(output_root)
    return sequence_arrays(table if limit is None else table.slice(0, limit))


def log_dataset(tracker: RunLogger, catalog: Catalog, name: str, artifact_dir: str) -> None:
    """Log a dataset the run wrote as an MLflow artifact of it, wherever the output root lives."""
    with catalog.local_file(name) as path:
        tracker.dataset_file(path, artifact_dir)
