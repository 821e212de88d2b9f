"""A migrated, empty Prefect database that each new home starts from.

Prefect's temporary API migrates a new database at its first start: Alembic's migrations take
~6 s of a 2-core machine on every new ``SHOAL_HOME`` (a scheduled job's fresh container, a
benchmark run, each test that runs the CLI). The empty schema depends on Prefect's version
alone, so ``make`` migrates one with Prefect's own command once per environment and new homes
copy it; Prefect still checks the revision at start and finds nothing to do. Without the file
(an install that skipped ``python -m infra.prefect_schema``) Prefect migrates as before.
Figures: benchmarks/README.md ("Start-up").
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

__all__ = ["build_schema", "schema_path", "seed_home"]

# What points Prefect elsewhere than ``$PREFECT_HOME/prefect.db``: then there is nothing to seed.
_ELSEWHERE = (
    "PREFECT_API_URL",
    "PREFECT_API_DATABASE_CONNECTION_URL",
    "PREFECT_SERVER_DATABASE_CONNECTION_URL",
)


def schema_path() -> Path:
    """Where this environment keeps the migrated schema of its installed Prefect version."""
    return Path(sys.prefix) / "share" / "shoal" / f"prefect-{version('prefect')}.db"


def build_schema(path: Path | None = None) -> Path:
    """Migrate an empty database with Prefect's own command and keep it at ``path``.

    Parameters
    ----------
    path : where to keep it; `schema_path` by default.

    Returns
    -------
    Path
        The migrated database.
    """
    path = path or schema_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as home:
        env = {k: v for k, v in os.environ.items() if k not in _ELSEWHERE}
        subprocess.run(
            [sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"],
            env={**env, "PREFECT_HOME": home, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"},
            check=True,
            capture_output=True,
        )
        os.replace(Path(home) / "prefect.db", path)  # whole or not at all, for concurrent readers
    return path


def seed_home(prefect_home: Path, schema: Path | None = None) -> bool:
    """Copy the migrated schema into a Prefect home that has no database yet.

    Parameters
    ----------
    prefect_home : the ``PREFECT_HOME`` about to be used.
    schema : the migrated database; `schema_path` by default.

    Returns
    -------
    bool
        Whether the home was seeded: not when it has a database, when Prefect's API or
        database is elsewhere (a server, PostgreSQL), or when no schema was built.
    """
    schema = schema or schema_path()
    target = prefect_home / "prefect.db"
    if target.exists() or any(os.environ.get(k) for k in _ELSEWHERE) or not schema.is_file():
        return False
    prefect_home.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=prefect_home, suffix=".db", delete=False) as part:
        shutil.copyfile(schema, part.name)
    try:
        # a hard link never replaces a database another process created meanwhile; where
        # links are not supported either, Prefect migrates the home itself
        os.link(part.name, target)
    except OSError:
        return False
    finally:
        Path(part.name).unlink()
    return True


if __name__ == "__main__":
    print(f"Prefect's schema migrated into {build_schema()}")
