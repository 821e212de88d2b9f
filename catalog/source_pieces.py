"""A source read in pieces (Parquet row groups, or a whole file of another format), for Dask.

``read_source`` loads a source whole, which is right for transactions; events at lake scale are
~100x larger, so ingest reads them piece by piece on Dask workers. A piece carries the same
``_source``/``_row`` columns and gets the same per-file contract check and error messages, so a
quarantined row still points at its file and line. Consecutive row groups of a file are read as
one piece up to a number of rows: each piece has a fixed cost (a task, a lookup table built
against the transactions), so pieces should be as large as a worker's memory allows.
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
    """A part of one input file, read as one unit: row groups of a Parquet file, or the file."""

    fs: fsspec.AbstractFileSystem
    path: str
    source: str  # the file as messages and the quarantine name it
    row_groups: tuple[int, ...] | None  # None: the whole file
    first_row: int  # row number, in its file, of the piece's first row
    hive: tuple[tuple[str, str], ...]


def plan_pieces(uri: str, max_rows: int) -> list[Piece]:
    """Cut the files at ``uri`` into pieces of at most ``max_rows`` rows.

    A Parquet piece is consecutive row groups up to ``max_rows`` rows (at least one group); a
    file of another format is one piece. Only Parquet footers are read here.
    """
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
        groups: list[int] = []
        first = rows = 0
        for g, size in enumerate(sizes):
            if groups and rows + size > max_rows:
                pieces.append(Piece(fs, path, source, tuple(groups), first, hive))
                groups, first, rows = [], first + rows, 0
            groups.append(g)
            rows += size
        if groups:
            pieces.append(Piece(fs, path, source, tuple(groups), first, hive))
    return pieces


def read_piece(piece: Piece, contract: Contract, dictionary: tuple[str, ...] = ()) -> pa.Table:
    """A piece's rows with ``_source`` and ``_row``, checked against the contract.

    Text columns named in ``dictionary`` are read from Parquet dictionary-encoded, as they are
    stored, rather than expanded to a string per row.
    """
    if piece.row_groups is None:
        table = _read_file(piece.fs, piece.path, hashlib.sha256())
    else:
        with _parquet_file(piece.fs, piece.path, piece.source, dictionary) as file:
            table = file.read_row_groups(list(piece.row_groups))
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
    fs: fsspec.AbstractFileSystem, path: str, source: str, dictionary: tuple[str, ...] = ()
) -> Iterator[pq.ParquetFile]:
    """An open Parquet file; what cannot be read is an ``InputError`` naming the file."""
    if fs.size(path) == 0:
        raise InputError(f"{source}: file is empty (0 bytes)")
    try:
        with fs.open(path, "rb") as f:
            file = pq.ParquetFile(f)
            text = [
                field.name
                for field in file.schema_arrow
                if field.name in dictionary
                and (pa.types.is_string(field.type) or pa.types.is_large_string(field.type))
            ]
            yield pq.ParquetFile(f, read_dictionary=text) if text else file
    except (pa.ArrowInvalid, OSError) as err:
        raise InputError(f"{source}: unreadable or corrupt parquet file: {err}") from err
