from __future__ import annotations

from pathlib import Path

import pytest

from infra.settings import Settings


def test_embedded_defaults_live_under_shoal_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for key in (
        "MLFLOW_TRACKING_URI",
        "RAY_ADDRESS",
        "SHOAL_DASK_SCHEDULER",
        "DASK_SCHEDULER_ADDRESS",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SHOAL_HOME", str(tmp_path))
    settings = Settings()
    assert settings.tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert settings.runs_dir == tmp_path / "runs"
    assert settings.ray_address is None and settings.dask_scheduler is None


def test_each_engine_is_overridden_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    monkeypatch.setenv("RAY_ADDRESS", "ray://127.0.0.1:10001")
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://127.0.0.1:8786")
    settings = Settings()
    assert settings.tracking_uri == "http://127.0.0.1:5000"
    assert settings.ray_address == "ray://127.0.0.1:10001"
    assert settings.dask_scheduler == "tcp://127.0.0.1:8786"
