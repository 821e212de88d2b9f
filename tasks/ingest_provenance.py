"""Ingest's versions: what produced a set of outputs, and when a rerun may reuse them.

A second ingest of unchanged inputs (by content), parameters and code into the same location
reuses the outputs through Prefect's cache; the catalog's ``lineage`` dataset (``lineage.json``)
beside them records which inputs, parameters and code produced them, atomic and digested like
every catalog dataset.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

from catalog.datasets import DATASETS, Catalog
from catalog.readers import list_files, source_digest
from infra.redact import redact_value

PROVENANCE_FILE = DATASETS["lineage"].filename

_INGEST_SOURCES = (
    "catalog/readers.py",
    "catalog/schemas.py",
    "ops/ingest/_validation.py",
    "ops/ingest/_timestamps.py",
    "ops/ingest/_sessionize.py",
    "catalog/source_pieces.py",
    "tasks/ingest.py",
    "tasks/ingest_events.py",
    "tasks/ingest_provenance.py",
)
_REPO = Path(__file__).resolve().parents[1]


@lru_cache(maxsize=1)
def code_version() -> dict[str, str | None]:
    """Git commit (when run from a checkout), package version, and a hash of ingest's own code.

    The cache keys on the source hash, not the commit: unrelated commits must not invalidate it.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        git = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=_REPO, capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        git = None
    try:
        package = version("shoal")
    except PackageNotFoundError:
        package = None
    source = hashlib.sha256()
    for name in _INGEST_SOURCES:
        source.update((_REPO / name).read_bytes())
    return {"git": git, "package": package, "ingest_source": source.hexdigest()[:16]}


@lru_cache(maxsize=256)
def _digest_of(uri: str, listing: tuple[tuple[str, Any, Any], ...]) -> str:
    return source_digest(uri)


def cached_source_digest(uri: str) -> str:
    """``source_digest``, read once per process for as long as no file's size or mtime changes."""
    fs, files = list_files(uri)
    listing = []
    for path in files:
        info = fs.info(path)
        stamp = info.get("ETag") or info.get("mtime") or info.get("LastModified")
        listing.append((path, info.get("size"), str(stamp)))
    return _digest_of(uri, tuple(listing))


def ingest_cache_key(
    events_uri: str, transactions_uri: str, output_root: str, params: dict[str, Any]
) -> str:
    """Inputs by content, parameters, code and destination: what determines ingest's outputs."""
    parts = {
        "events": cached_source_digest(events_uri),
        "transactions": cached_source_digest(transactions_uri),
        "params": params,
        "code": code_version()["ingest_source"],
        "output": output_root.rstrip("/"),
    }
    return "ingest-" + hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def read_provenance(output_root: str) -> dict[str, Any] | None:
    """The provenance record an earlier ingest left in ``output_root``; None when there is none."""
    catalog = Catalog(output_root)
    return catalog.load_json("lineage") if catalog.exists("lineage") else None


def write_provenance(output_root: str, lineage: dict[str, Any]) -> str:
    """Written last, atomically: a reader sees the previous lineage or the new one. Its digest.

    Input URIs may carry credentials (``s3://key:secret@bucket``); the record never does.
    """
    return Catalog(output_root).save_json("lineage", redact_value(lineage))
