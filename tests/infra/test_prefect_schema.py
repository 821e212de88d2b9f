"""A new home starts from Prefect's migrated schema, and its flows run on it."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from infra.prefect_schema import build_schema, seed_home

ROOT = Path(__file__).resolve().parents[2]

RUN_A_FLOW = """
from infra.settings import configure_environment
configure_environment()
from prefect import flow

@flow
def hello() -> str:
    return "hello"

print(hello())
"""


def _revision(database: Path) -> list[tuple[str, ...]]:
    with sqlite3.connect(database) as db:
        return db.execute("SELECT version_num FROM alembic_version").fetchall()


def test_a_seeded_home_runs_flows_on_the_migrated_schema(tmp_path: Path) -> None:
    schema = build_schema(tmp_path / "share" / "prefect.db")  # Prefect's own migrations
    assert list((tmp_path / "share").iterdir()) == [schema]  # no migration home left behind
    revision = _revision(schema)
    assert len(revision) == 1

    home = tmp_path / "home"
    assert seed_home(home / "prefect", schema)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    environ.update(SHOAL_HOME=str(home), PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", RUN_A_FLOW], env=environ, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "hello"
    database = home / "prefect" / "prefect.db"
    assert _revision(database) == revision  # nothing left to migrate
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT count(*) FROM flow_run").fetchone() == (1,)


def test_only_a_home_without_a_database_is_seeded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("PREFECT_API_URL", "PREFECT_API_DATABASE_CONNECTION_URL"):
        monkeypatch.delenv(name, raising=False)
    schema = tmp_path / "schema.db"
    schema.write_bytes(b"migrated")
    home = tmp_path / "prefect"
    assert seed_home(home, schema)
    assert (home / "prefect.db").read_bytes() == b"migrated"
    assert [p.name for p in home.iterdir()] == ["prefect.db"]  # no partial copy left

    (home / "prefect.db").write_bytes(b"runs of its own")
    assert not seed_home(home, schema)
    assert (home / "prefect.db").read_bytes() == b"runs of its own"

    assert not seed_home(tmp_path / "no-schema", tmp_path / "missing.db")
    monkeypatch.setenv("PREFECT_API_DATABASE_CONNECTION_URL", "postgresql+asyncpg://db/prefect")
    assert not seed_home(tmp_path / "postgres", schema)
    assert not (tmp_path / "postgres").exists()
