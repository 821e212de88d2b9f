"""A source read in pieces (a Parquet row group, or a whole file of another format), for Dask.

``read_source`` loads a source whole, which is right for transactions; events at lake scale are
~100x larger, so ingest reads them piece by piece on Dask workers. A piece carries the same
``_source``/``_row`` columns and gets the same per-file contract check and error messages, so a
quarantined row still points at its file and line.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from catalog.readers import (
    ROW_COLUMN,
    SOURCE_COLUMN,
    _display,
    _format_of,
    _hive_keys,
    _read_file,
    list_files,
)
from catalog.schemas import Contract, InputError, check_contract


@dataclass(frozen=True)
class Piece:
    fs: fsspec.AbstractFileSystem
    path: str
    source: str  # the file as messages and the quarantine name it
    row_group: int | None  # None: the whole file
    first_row: int  # row number, in its file, of the piece's first row
    hive: tuple[tuple[str, str], ...]


def plan_pieces(uri: str) -> list[Piece]:
    """One piece per Parquet row group (only footers are read here), one per other file."""
    fs, files = list_files(uri)
    base = fsspec.core.url_to_fs(uri)[1].rstrip("/")
    pieces = []
    for path in files:
        source, hive = _display(fs, path), tuple(_hive_keys(base, path).items())
        if _format_of(path) != "parquet" or path.endswith(".gz"):
            pieces.append(Piece(fs, path, source, None, 0, hive))
            continue
        with _parquet_file(fs, path, source) as file:
            sizes = [file.metadata.row_group(g).num_rows for g in range(file.num_row_groups)]
        starts = [sum(sizes[:g]) for g in range(len(sizes))]
        pieces += [Piece(fs, path, source, g, start, hive) for g, start in enumerate(starts)]
    return pieces


def read_piece(piece: Piece, contract: Contract) -> pa.Table:
    """A piece's rows with ``_source`` and ``_row``, checked against the contract."""
    if piece.row_group is None:
        table = _read_file(piece.fs, piece.path, hashlib.sha256())
    else:
        with _parquet_file(piece.fs, piece.path, piece.source) as file:
            table = file.read_row_group(piece.row_group)
    for key, value in piece.hive:
        if key not in table.column_names:
            table = table.append_column(key, pa.array([value] * table.num_rows, pa.string()))
    if table.num_rows:
        check_contract(table, contract, piece.source)
    n = table.num_rows
    # One dictionary entry, not a copy of the file name per row: pieces are large.
    source = pa.DictionaryArray.from_arrays(np.zeros(n, np.int32), pa.array([piece.source]))
    table = table.append_column(SOURCE_COLUMN, source)
    return table.append_column(ROW_COLUMN, pa.array(np.arange(n) + piece.first_row, pa.int64()))


@contextmanager
def _parquet_file(
    fs: fsspec.AbstractFileSystem, path: str, source: str
) -> Iterator[pq.ParquetFile]:
    """An open Parquet file; what cannot be read is an ``InputError`` naming the file."""
    if fs.size(path) == 0:
        raise InputError(f"{source}: file is empty (0 bytes)")
    try:
        with fs.open(path, "rb") as f:
            yield pq.ParquetFile(f)
    except (pa.ArrowInvalid, OSError) as err:
        raise InputError(f"{source}: unreadable or corrupt parquet file: {err}") from err
