"""Glue between the catalog, the ops' array inputs and run tracking, shared by the tasks."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from catalog.datasets import DATASETS, Catalog
from infra.tracking import RunLogger


def split_lists(column: pa.ChunkedArray, dtype: type) -> list[np.ndarray]:
    """A list column as one numpy array per row, by slicing the flat values (no Python per item)."""
    array = column.combine_chunks()
    offsets = array.offsets.to_numpy()
    values = array.values.to_numpy(zero_copy_only=False).astype(dtype, copy=False)
    return np.split(values, offsets[1:-1] - offsets[0]) if len(array) else []


def load_sequences(
    output_root: str, limit: int | None = None
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """``txn_id``, token ids and dwell seconds, in the order ingest wrote them."""
    table = Catalog(output_root).load_table("sequences", ["txn_id", "tokens", "dwell"])
    if limit is not None:
        table = table.slice(0, limit)
    txn_ids = table.column("txn_id").to_numpy(zero_copy_only=False).astype(str)
    return (
        txn_ids,
        split_lists(table.column("tokens"), np.int64),
        split_lists(table.column("dwell"), np.float32),
    )


def log_dataset(tracker: RunLogger, catalog: Catalog, name: str, artifact_dir: str) -> None:
    """Copy a dataset the run wrote into its MLflow artifacts, wherever the output root lives."""
    tracker.bytes_artifact(catalog.load_bytes(name), f"{artifact_dir}/{DATASETS[name].filename}")
