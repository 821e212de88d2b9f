"""Engines for the integration tests: each test session gets its own ``SHOAL_HOME``.

MLflow then writes to a temporary SQLite store, Ray Train to a temporary storage path, and
Prefect runs against its test harness (started once: it costs seconds each time).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Before torch loads OpenMP: spinning waiters starve each other on a 2-core CI machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(scope="session")
def shoal_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from infra.settings import configure_environment, get_settings

    home = tmp_path_factory.mktemp("shoal_home")
    saved = {k: os.environ.get(k) for k in ("SHOAL_HOME", "MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
    os.environ["SHOAL_HOME"] = str(home)
    for key in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS"):
        os.environ.pop(key, None)
    get_settings.cache_clear()
    configure_environment()
    yield home
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def prefect_harness(shoal_home: Path) -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="session")
def local_ray(shoal_home: Path) -> Iterator[None]:
    import ray

    from infra.ray import ensure_ray

    ensure_ray()
    yield
    ray.shutdown()
