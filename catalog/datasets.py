"""Declarative catalog of what a run writes: names, formats and file names, one place.

Tasks exchange dataset *names* resolved against a run's output root and the content digest of
what was written, never large in-memory objects, so Prefect can cache and retry them.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import posixpath
import tempfile
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal, cast

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from infra.redact import redact
from infra.retry import retry_io

Format = Literal["parquet", "json", "html", "npz", "text"]
# transaction ids: Arrow strings as the catalog reads them, a column, or NumPy's
Ids = pa.ChunkedArray | pa.Array | pd.Series | np.ndarray


@dataclass(frozen=True)
class Dataset:
    """One dataset of a run: its catalog name, file name, format and meaning."""

    name: str
    filename: str
    format: Format
    description: str


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset("transactions", "transactions.parquet", "parquet", "accepted transactions"),
        Dataset("sequences", "sequences.parquet", "parquet", "per-transaction event sequences"),
        Dataset("vocabulary", "vocabulary.json", "json", "event tokens by frequency"),
        Dataset("quarantine", "quarantine.parquet", "parquet", "rejected rows with a reason"),
        Dataset("ingest_counts", "ingest_counts.json", "json", "rows in/accepted/quarantined"),
        Dataset("lineage", "lineage.json", "json", "inputs, params and code behind outputs"),
        Dataset("embeddings", "embeddings.parquet", "parquet", "sequence embeddings by txn_id"),
        Dataset("hybrid", "hybrid.parquet", "parquet", "hybrid vectors by txn_id"),
        Dataset("feature_spec", "feature_spec.json", "json", "how intuitive features are encoded"),
        Dataset("hybrid_scaling", "hybrid_scaling.json", "json", "fitted hybrid-vector scaling"),
        Dataset("page_dwell", "page_dwell.json", "json", "fitted typical dwell of each page"),
        Dataset("behaviour", "behaviour.parquet", "parquet", "session pace and path per txn"),
        Dataset("assignments", "assignments.parquet", "parquet", "pHDBSCAN output per txn"),
        Dataset("clusters", "clusters.parquet", "parquet", "cluster and risk per transaction"),
        Dataset("clusterer", "clusterer.npz", "npz", "what approximate_predict needs"),
        Dataset("risk", "risk.parquet", "parquet", "risk measures per cluster"),
        Dataset("branches", "branches.parquet", "parquet", "txns in risky unselected tree nodes"),
        Dataset("review", "review.parquet", "parquet", "unlabelled txns in risky clusters"),
        Dataset("missed", "missed_fraud.parquet", "parquet", "fraud the engine approved"),
        Dataset("clusters_summary", "clusters_summary.parquet", "parquet", "one row a cluster"),
        Dataset("metrics", "metrics.json", "json", "cluster quality and risk figures"),
        Dataset("rules", "rules.json", "json", "rules of risky clusters"),
        Dataset("flags", "flags.json", "json", "flagged transactions per reason"),
        Dataset("summary", "summary.json", "json", "the run in brief"),
        Dataset("report", "report.html", "html", "the investigator's report"),
        Dataset("scores", "scores.parquet", "parquet", "champion cluster of scored txns"),
        Dataset("hits", "hits.parquet", "parquet", "scored txns in risky clusters"),
        Dataset("sweep_results", "sweep_results.parquet", "parquet", "sweep trials, best first"),
        Dataset("best_config", "best_config.yaml", "text", "the sweep's best configuration"),
    )
}


class _DigestingSink(io.RawIOBase):
    """A writable file that hands every byte on to ``target`` and hashes it on the way."""

    def __init__(self, target: BinaryIO) -> None:
        super().__init__()
        self._target, self._hash, self._written = target, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)  # bytes, or a buffer Arrow hands over
        self._target.write(view)
        self._hash.update(view)
        self._written += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        return self._written

    def digest(self) -> str:
        """:func:`digest_bytes` of everything written."""
        return self._hash.hexdigest()[:16]


# Rows per Parquet row group of a vectors dataset: 16 MB of 64 float32 columns.
VECTOR_ROWS = 1 << 16

# Outputs written for people to read, and so redacted of credentials.
FOR_PEOPLE = frozenset({"summary", "report"})


def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
    """Whether ``fs`` is this machine's filesystem (its files can be opened by path)."""
    return fs.protocol in ("file", ("file", "local")) or "file" in fs.protocol


def _vector_matrix(column: pa.ChunkedArray) -> np.ndarray:
    """A column of fixed-size lists as a 2-D array, one row per list."""
    column = column.combine_chunks()
    return column.values.to_numpy(zero_copy_only=False).reshape(-1, column.type.list_size)


def arrow_ids(txn_ids: Ids, kind: pa.DataType | None = None) -> pa.ChunkedArray:
    """``txn_ids`` as one Arrow column of ``kind`` (large strings); a column's without a copy."""
    kind = pa.large_string() if kind is None else kind
    # an Arrow-backed column gives its own chunks; a NumPy array or object column is copied
    ids = pa.array(txn_ids, kind) if isinstance(txn_ids, pd.Series | np.ndarray) else txn_ids
    return (pa.chunked_array([ids]) if isinstance(ids, pa.Array) else ids).cast(kind)


def digest_bytes(data: bytes) -> str:
    """The first 16 hex digits of the SHA-256 of ``data``: a dataset's identity in lineage."""
    return hashlib.sha256(data).hexdigest()[:16]


@dataclass(frozen=True)
class Catalog:
    """One run's output location (a local path or any fsspec URI)."""

    root: str

    def uri(self, name: str) -> str:
        """Where dataset ``name`` lives under this catalog's root."""
        return posixpath.join(self.root.rstrip("/"), DATASETS[name].filename)

    def _fs(self) -> tuple[fsspec.AbstractFileSystem, str]:
        fs, path = fsspec.core.url_to_fs(self.root)
        return fs, path

    def exists(self, name: str) -> bool:
        """Whether dataset ``name`` has been written (transient I/O errors retried)."""
        fs, _ = self._fs()
        path = fsspec.core.url_to_fs(self.uri(name))[1]
        return retry_io(f"check {self.uri(name)}", lambda: fs.exists(path))

    def save_bytes(self, name: str, data: bytes) -> str:
        """Write atomically (temporary name, then rename) and return the content digest.

        Transient errors retry the whole write: each attempt has its own temporary name, so a
        half-written attempt is never renamed into place.
        """
        return self.save_stream(name, lambda sink: sink.write(data))

    def save_stream(self, name: str, write: Callable[[BinaryIO], object]) -> str:
        """Dataset ``name`` as ``write`` writes it into a file, as `save_bytes`; its digest.

        ``write`` gets a binary file that is neither readable nor seekable, and hashes what
        passes through it: a model of hundreds of MB goes straight to storage, never held in
        memory as bytes nor written to a local file first. A retried attempt calls ``write``
        again.
        """

        def put(fs: fsspec.AbstractFileSystem, tmp: str) -> str:
            with fs.open(tmp, "wb") as f:
                sink = _DigestingSink(f)
                write(cast(BinaryIO, sink))
            return sink.digest()

        return retry_io(f"write {self.uri(name)}", lambda: self._write(name, put))

    def _write(self, name: str, put: Callable[[Any, str], str]) -> str:
        """Run ``put(fs, tmp)``, which writes a file and returns its digest; move it into place."""
        fs, root = self._fs()
        fs.makedirs(root, exist_ok=True)
        final = posixpath.join(root, DATASETS[name].filename)
        tmp = posixpath.join(root, f".{DATASETS[name].filename}.{uuid.uuid4().hex}.tmp")
        try:
            result = put(fs, tmp)
            fs.mv(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):  # a failed attempt leaves no temporary file
                fs.rm(tmp)
            raise
        return result

    def load_bytes(self, name: str) -> bytes:
        """Dataset ``name``'s bytes (transient I/O errors retried)."""
        fs, _ = self._fs()
        path = fsspec.core.url_to_fs(self.uri(name))[1]
        return retry_io(f"read {self.uri(name)}", lambda: fs.cat_file(path))

    def save_table(self, name: str, table: pa.Table | pd.DataFrame) -> str:
        """Write ``table`` as Parquet without the pandas index; return its digest."""
        if isinstance(table, pd.DataFrame):
            table = pa.Table.from_pandas(table, preserve_index=False)
        # streamed into the file: a whole-file buffer, grown by doubling and then copied as
        # bytes, held 1.2 GB for the 400 MB of hybrid vectors at 3M rows
        return self.save_stream(name, lambda sink: pq.write_table(table, sink, compression="zstd"))

    def load_table(
        self, name: str, columns: list[str] | None = None, *, leave_out: Collection[str] = ()
    ) -> pa.Table:
        """Read a Parquet dataset, or only ``columns`` of it, less the columns in ``leave_out``.

        A local file is memory-mapped: Arrow decodes its pages from the page cache, and no
        copy of the file fills fresh memory (359 MB for the embeddings of 3M rows).
        """
        source, local = self._parquet_source(name)
        if leave_out:
            names = pq.read_schema(source, memory_map=local).names if columns is None else columns
            columns = [c for c in names if c not in leave_out]
        return pq.read_table(source, columns=columns, memory_map=local)

    def _parquet_source(self, name: str) -> tuple[str | pa.BufferReader, bool]:
        """``(source, local)``: a local file's path, to be mapped, else the object's bytes."""
        fs, path = fsspec.core.url_to_fs(self.uri(name))
        if _is_local(fs):
            return path, True
        return pa.BufferReader(self.load_bytes(name)), False

    def _parquet_file(self, name: str) -> pq.ParquetFile:
        """A Parquet dataset opened for reading a row group at a time (mapped where local)."""
        source, local = self._parquet_source(name)
        return pq.ParquetFile(source, memory_map=local)

    def load_frame(self, name: str, columns: list[str] | None = None) -> pd.DataFrame:
        """Read a Parquet dataset, or only ``columns`` of it, as a DataFrame."""
        return self.load_table(name, columns).to_pandas()

    def save_vectors(self, name: str, txn_ids: Ids, vectors: np.ndarray) -> str:
        """A float32 matrix keyed by ``txn_id``, one fixed-size list per row."""
        return self.save_vector_rows(name, txn_ids, vectors.shape[1], lambda a, b: vectors[a:b])

    def save_vector_rows(
        self,
        name: str,
        txn_ids: Ids,
        width: int,
        rows: Callable[[int, int], np.ndarray],
    ) -> str:
        """:meth:`save_vectors` of a matrix that ``rows(start, stop)`` computes a block at a time.

        Each block of ``VECTOR_ROWS`` rows is a Parquet row group, written as it comes: the
        whole matrix is never held, as the hybrid vectors' 768 MB at 3M rows were, whose
        fresh pages cost more than their arithmetic. A retried write computes them again.
        """
        schema = pa.schema([("txn_id", pa.string()), ("vector", pa.list_(pa.float32(), width))])

        def write(sink: BinaryIO) -> None:
            with pq.ParquetWriter(sink, schema, compression="zstd", use_dictionary=False) as writer:
                for start in range(0, len(txn_ids), VECTOR_ROWS):
                    stop = min(start + VECTOR_ROWS, len(txn_ids))
                    block = np.ascontiguousarray(rows(start, stop), dtype=np.float32)
                    if block.shape != (stop - start, width):
                        raise ValueError(
                            f"rows {start}:{stop} of '{name}' have shape {block.shape}, "
                            f"expected ({stop - start}, {width})"
                        )
                    vectors = pa.FixedSizeListArray.from_arrays(pa.array(block.ravel()), width)
                    ids = arrow_ids(txn_ids[start:stop], pa.string()).combine_chunks()
                    writer.write_table(pa.table([ids, vectors], schema=schema))

        return self.save_stream(name, write)

    def load_vectors(self, name: str) -> tuple[pa.ChunkedArray, np.ndarray]:
        """Read vectors saved by :meth:`save_vectors`: transaction ids and a 2-D float array.

        The ids stay Arrow strings, as stored: as NumPy strings 3M of them took 0.56 s and
        300 MB of fresh memory. The matrix is filled a row group at a time, never built
        from a second copy of it (benchmarks/README.md).
        """
        parquet = self._parquet_file(name)
        width = parquet.schema_arrow.field("vector").type.list_size
        matrix = np.empty((parquet.metadata.num_rows, width), dtype=np.float32)
        at = 0
        for group in range(parquet.num_row_groups):
            block = _vector_matrix(parquet.read_row_group(group, columns=["vector"]).column(0))
            matrix[at : at + len(block)] = block
            at += len(block)
        return parquet.read(columns=["txn_id"]).column(0), matrix

    def load_vector_rows(self, name: str, rows: np.ndarray) -> np.ndarray:
        """The vectors at positions ``rows`` (any order) of a :meth:`save_vectors` dataset.

        Read a row group at a time, keeping only those rows: the whole matrix is never held
        (benchmarks/README.md).
        """
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        wanted = rows[order]
        parquet = self._parquet_file(name)
        groups = parquet.metadata.num_row_groups
        bounds = np.cumsum([0] + [parquet.metadata.row_group(g).num_rows for g in range(groups)])
        if len(wanted) and (wanted[0] < 0 or wanted[-1] >= bounds[-1]):
            raise IndexError(f"rows of '{name}' run from 0 to {bounds[-1] - 1}")
        width = parquet.schema_arrow.field("vector").type.list_size
        out = np.empty((len(rows), width), dtype=np.float32)
        at = np.searchsorted(wanted, bounds)
        for g in np.flatnonzero(at[1:] > at[:-1]):
            block = _vector_matrix(parquet.read_row_group(int(g), columns=["vector"]).column(0))
            out[order[at[g] : at[g + 1]]] = block[wanted[at[g] : at[g + 1]] - bounds[g]]
        return out

    def load_lists(
        self, name: str, columns: dict[str, type]
    ) -> tuple[pa.ChunkedArray, dict[str, tuple[np.ndarray, np.ndarray]]]:
        """The ``txn_id`` and list columns of a Parquet dataset, each list column as NumPy.

        ``columns`` maps each list column to the dtype of its items; each comes back as its
        rows' items end to end and where each row starts (``len + 1`` offsets). Filled a row
        group at a time: decoded whole and then combined, 3M sessions' tokens and dwell held
        816 MB of fresh memory where they need 408 MB (benchmarks/README.md).
        """
        parquet = self._parquet_file(name)
        meta = parquet.metadata
        groups = range(meta.num_row_groups)
        leaves = [meta.schema.column(i).path.split(".")[0] for i in range(meta.num_columns)]
        lists: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for column, dtype in columns.items():
            leaf = leaves.index(column)
            # a row group's leaf values count its items and a slot per empty or null list
            bound = sum(meta.row_group(g).column(leaf).num_values for g in groups)
            lists[column] = (np.empty(bound, dtype), np.zeros(meta.num_rows + 1, np.int64))
        filled = dict.fromkeys(columns, 0)
        row = 0
        for group in groups:
            table = parquet.read_row_group(group, columns=list(columns))
            for column, (values, offsets) in lists.items():
                rows = table.column(column).combine_chunks()  # one row group: a few MB
                ends = rows.offsets.to_numpy()
                items = rows.values.to_numpy(zero_copy_only=False)[ends[0] : ends[-1]]
                at = filled[column]
                values[at : at + len(items)] = items
                offsets[row + 1 : row + len(rows) + 1] = at + ends[1:] - ends[0]
                filled[column] = at + len(items)
            row += table.num_rows
        lists = {c: (values[: filled[c]], offsets) for c, (values, offsets) in lists.items()}
        return parquet.read(columns=["txn_id"]).column(0), lists

    def save_json(self, name: str, obj: Any) -> str:
        """Write ``obj`` as indented JSON (anything else as its ``str``); return its digest."""
        return self.save_text(name, json.dumps(obj, indent=2, default=str))

    def load_json(self, name: str) -> Any:
        """Read a JSON dataset."""
        return json.loads(self.load_bytes(name))

    def save_text(self, name: str, text: str) -> str:
        """What people read (summary, report) is redacted: no credential from a URI lands there.

        Data (vocabularies, specs, rules) is written as is: masking could alter a value.
        """
        return self.save_bytes(name, (redact(text) if name in FOR_PEOPLE else text).encode())

    @contextlib.contextmanager
    def local_file(self, name: str) -> Iterator[str]:
        """A local path holding dataset ``name``, for libraries that need one (MLflow, numpy).

        On a local filesystem it is the dataset's own file, read where it lies (the clusterer
        is ~380 MB at 1M); from an object store, a temporary copy, downloaded to disk without
        passing through memory and removed on exit.
        """
        fs, path = fsspec.core.url_to_fs(self.uri(name))
        if _is_local(fs):
            yield path
            return
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, DATASETS[name].filename)
            retry_io(f"read {self.uri(name)}", lambda: fs.get_file(path, local))
            yield local
