"""Read a source the contract allows (Parquet file/dir, CSV, JSON Lines, gzip forms) from any URI.

Every row carries the file it came from and its row number there, so a quarantined row can be
traced back to the exact line a data engineer must fix.
"""

from __future__ import annotations

import gzip
import hashlib
import posixpath

import fsspec
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from catalog.schemas import Contract, InputError, check_contract
from infra.credentials import storage_options
from infra.redact import redact
from infra.retry import retry_io

SOURCE_COLUMN, ROW_COLUMN = "_source", "_row"

_FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".jsonl": "json",
    ".ndjson": "json",
    ".json": "json",
}


def _format_of(path: str) -> str:
    name = path[:-3] if path.endswith(".gz") else path
    for suffix, fmt in _FORMATS.items():
        if name.endswith(suffix):
            return fmt
    raise InputError(f"{path}: unknown file type (expected .parquet, .csv, .jsonl, or their .gz)")


def list_files(uri: str) -> tuple[fsspec.AbstractFileSystem, list[str]]:
    """The data files behind a URI: itself, or every supported file under a directory.

    Listing is retried on transient errors (a store's listing is a network call too).
    """
    return retry_io(f"list {uri}", lambda: _list_files(uri))


def _list_files(uri: str) -> tuple[fsspec.AbstractFileSystem, list[str]]:
    fs, path = fsspec.core.url_to_fs(uri, **storage_options(uri))
    if not fs.exists(path):
        raise InputError(f"{uri}: no such file or directory")
    if fs.isdir(path):
        files = sorted(
            p
            for p in fs.find(path)
            if not posixpath.basename(p).startswith((".", "_")) and _is_data_file(p)
        )
        if not files:
            raise InputError(f"{uri}: directory holds no .parquet, .csv or .jsonl files")
        return fs, files
    return fs, [path]


def _is_data_file(path: str) -> bool:
    try:
        _format_of(path)
    except InputError:
        return False
    return True


def read_source(uri: str, contract: Contract | None = None) -> tuple[pa.Table, str]:
    """All rows of a source with ``_source`` and ``_row``, and the digest of its bytes.

    Hive partition keys become columns. The digest covers file contents in path order, not
    names or locations, so the same data on S3 and on local disk gets the same version. With a
    ``contract``, each file is checked on its own, so a fatal message names the very file at
    fault inside a directory rather than the directory.
    """
    fs, files = list_files(uri)
    base = fsspec.core.url_to_fs(uri, **storage_options(uri))[1].rstrip("/")
    tables, digest = [], hashlib.sha256()
    for path in files:
        table = _read_file(fs, path, digest)
        source = _display(fs, path)
        for key, value in _hive_keys(base, path).items():
            if key not in table.column_names:
                table = table.append_column(key, pa.array([value] * table.num_rows, pa.string()))
        if contract is not None and table.num_rows:
            check_contract(table, contract, source)
        table = table.append_column(SOURCE_COLUMN, pa.array([source] * table.num_rows, pa.string()))
        table = table.append_column(ROW_COLUMN, pa.array(range(table.num_rows), pa.int64()))
        tables.append(table)
    try:
        combined = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise InputError(_disagreement(uri, files, tables, fs) or f"{uri}: {err}") from err
    if combined.num_rows == 0:
        raise InputError(f"{uri}: input is empty (no rows)")
    return combined, digest.hexdigest()[:16]


def source_digest(uri: str, chunk: int = 1 << 24) -> str:
    """The digest ``read_source`` would return, streamed without parsing (for cache keys)."""
    fs, files = list_files(uri)
    digest = hashlib.sha256()
    for path in files:
        # A retry restarts the file from a copy of the digest so far, never hashing bytes twice.
        digest = retry_io(
            f"read {path}", lambda path=path, seen=digest: _hash_file(seen.copy(), fs, path, chunk)
        )
    return digest.hexdigest()[:16]


def _hash_file(
    digest: hashlib._Hash, fs: fsspec.AbstractFileSystem, path: str, chunk: int
) -> hashlib._Hash:
    with fs.open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest


def _display(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """How a file is named in ``_source`` and messages: a full URI, credentials masked."""
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if protocol in ("file", "local") or "://" in path:  # HTTP paths are whole URLs already
        return redact(path)
    return redact(f"{protocol}://{path}")


def _disagreement(
    uri: str, files: list[str], tables: list[pa.Table], fs: fsspec.AbstractFileSystem
) -> str | None:
    """Name the column and the two files whose types cannot be merged."""
    first_seen: dict[str, tuple[str, pa.DataType]] = {}
    for path, table in zip(files, tables, strict=True):
        for field in table.schema:
            if field.name not in first_seen:
                first_seen[field.name] = (path, field.type)
                continue
            other, kind = first_seen[field.name]
            if (
                kind != field.type
                and not pa.types.is_null(kind)
                and not pa.types.is_null(field.type)
            ):
                try:
                    pa.concat_tables(
                        [
                            pa.table({"c": pa.array([], kind)}),
                            pa.table({"c": pa.array([], field.type)}),
                        ],
                        promote_options="permissive",
                    )
                except (pa.ArrowInvalid, pa.ArrowTypeError):
                    return (
                        f"{_display(fs, path)}: column '{field.name}' has type {field.type} but "
                        f"{_display(fs, other)} has {kind}; files of {uri} must agree on types"
                    )
    return None


def _hive_keys(base: str, path: str) -> dict[str, str]:
    """``key=value`` folders between the source root and a file, as in hive partitioning."""
    folders = path[len(base) :].strip("/").split("/")[:-1]
    return dict(f.split("=", 1) for f in folders if "=" in f)


def _read_file(fs: fsspec.AbstractFileSystem, path: str, digest: hashlib._Hash) -> pa.Table:
    fmt = _format_of(path)
    try:
        data = retry_io(f"read {path}", lambda: _fetch(fs, path))
        digest.update(data)
        if not data:
            raise InputError(f"{path}: file is empty (0 bytes)")
        if path.endswith(".gz"):
            data = gzip.decompress(data)
        buffer = pa.BufferReader(data)
        if fmt == "parquet":
            return pq.read_table(buffer)
        if fmt == "csv":
            return pacsv.read_csv(buffer)
        return pajson.read_json(buffer)
    except (pa.ArrowInvalid, OSError, EOFError, gzip.BadGzipFile) as err:
        raise InputError(f"{path}: unreadable or corrupt {fmt} file: {err}") from err


def _fetch(fs: fsspec.AbstractFileSystem, path: str) -> bytes:
    with fs.open(path, "rb") as f:
        return f.read()
