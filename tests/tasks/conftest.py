"""Sequences written the way ingest writes them, without a Prefect flow around it."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from catalog.datasets import Catalog
from catalog.synthetic import shop_tables
from ops.ingest import sessionize_events


def write_sequences(events: pa.Table, root: Path, max_len: int, vocabulary_size: int = 64) -> int:
    """Sessionize ``events`` into ``root``'s ``sequences`` dataset; returns the vocabulary size."""
    table, vocabulary = sessionize_events(events, max_len, vocabulary_size)
    catalog = Catalog(str(root))
    catalog.save_table("sequences", table)
    catalog.save_json("vocabulary", vocabulary)
    return len(vocabulary)


@pytest.fixture(scope="session")
def shop_sequences(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, int]:
    """~1500 shop sessions (output root, vocabulary size), last 32 events each."""
    root = tmp_path_factory.mktemp("sequences")
    tables = shop_tables(1500, seed=5)
    return str(root), write_sequences(tables.events, root, max_len=32)
