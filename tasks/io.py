"""Glue between the catalog, the ops' array inputs and run tracking, shared by the tasks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from catalog.datasets import Catalog
from infra.tracking import RunLogger
from ops.features import Ragged


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


def ragged_lists(column: pa.ChunkedArray, dtype: type) -> Ragged:
    """A list column as :class:`ops.features.Ragged` rows: its flat values, no array per row."""
    array = column.combine_chunks()
    offsets = array.offsets.to_numpy()
    return Ragged(array.values.to_numpy(zero_copy_only=False).astype(dtype, copy=False), offsets)


def same_order(ids: np.ndarray, txn_ids: np.ndarray) -> bool:
    """Whether ``ids`` are ``txn_ids``, in that order.

    Ingest writes every table in one order, so a task compares the ids before it looks rows
    up by id: a comparison costs a fraction of a lookup by a hash of the ids
    (benchmarks/README.md).
    """
    return len(ids) == len(txn_ids) and bool(np.array_equal(ids, txn_ids))


def join_on_ids(view: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
    """``view.join(other.set_index("txn_id"), on="txn_id")``; by position in the same order."""
    if same_order(other["txn_id"].to_numpy(), view["txn_id"].to_numpy()):
        return pd.concat([view, other.drop(columns="txn_id").set_axis(view.index)], axis=1)
    return view.join(other.set_index("txn_id"), on="txn_id")


def read_sequences(output_root: str) -> pa.Table:
    """The ``sequences`` dataset's ``txn_id``, ``tokens`` and ``dwell`` columns, as written."""
    return Catalog(output_root).load_table("sequences", ["txn_id", "tokens", "dwell"])


def sequence_arrays(
    table: pa.Table, ragged: bool = False
) -> tuple[np.ndarray, Sequence[np.ndarray], Sequence[np.ndarray]]:
    """``txn_id``, token ids and dwell seconds of a :func:`read_sequences` table's rows.

    One array per row and column: at 1M sessions this split costs ~2 s, so a caller that
    needs only some rows takes them from the table first. ``ragged``: the rows as
    :class:`ops.features.Ragged` (for whole-column work) instead of a list of arrays, with
    the token ids as ingest stores them (int32): widening them to int64 wrote 408 MB at 3M
    sessions, 1.3 s of page faults.
    """
    txn_ids = table.column("txn_id").to_numpy(zero_copy_only=False).astype(str)
    rows, token_type = (ragged_lists, np.int32) if ragged else (split_lists, np.int64)
    return (
        txn_ids,
        rows(table.column("tokens"), token_type),
        rows(table.column("dwell"), np.float32),
    )


def load_sequences(
    output_root: str, limit: int | None = None, ragged: bool = False
) -> tuple[np.ndarray, Sequence[np.ndarray], Sequence[np.ndarray]]:
    """``txn_id``, token ids and dwell seconds, in the order ingest wrote them.

    ``ragged``: as in :func:`sequence_arrays`.
    """
    table = read_sequences(output_root)
    return sequence_arrays(table if limit is None else table.slice(0, limit), ragged)


def log_dataset(tracker: RunLogger, catalog: Catalog, name: str, artifact_dir: str) -> None:
    """Log a dataset the run wrote as an MLflow artifact of it, wherever the output root lives."""
    with catalog.local_file(name) as path:
        tracker.dataset_file(path, artifact_dir)
