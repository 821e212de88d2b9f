"""RunLogger: one batched request per call, datasets whose source MLflow reads back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.data
import pytest
from mlflow.data.http_dataset_source import HTTPDatasetSource
from mlflow.tracking import MlflowClient
from mlflow.utils.file_utils import local_file_uri_to_path

from infra.dataset_source import FsspecDatasetSource
from infra.tracking import RunLogger


@pytest.fixture
def run(tmp_path: Path) -> tuple[RunLogger, list[str]]:
    """A run on a SQLite store; every request the logger makes is recorded by method name."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("t", artifact_location=(tmp_path / "a").as_uri())
    logger = RunLogger(client.create_run(experiment).info.run_id, tracking_uri=uri)
    calls: list[str] = []

    class Recording:
        def __getattr__(self, name: str) -> Any:
            calls.append(name)
            return getattr(client, name)

    logger.client = Recording()  # type: ignore[assignment]
    return logger, calls


def test_params_metrics_and_tags_go_in_one_batch_each(run: tuple[RunLogger, list[str]]) -> None:
    logger, calls = run
    params = {f"p{i}": i for i in range(150)}  # beyond MLflow's 100 per request: it splits
    logger.params({"stage": params, "token": "https://u:hunter2pass@h/x"})
    logger.metrics({"loss": 0.5, "nan": float("nan"), "acc": 0.9}, step=3)
    logger.tags({"shoal.flow": "ingest"})
    assert calls == ["log_batch", "log_batch", "log_batch"]
    data = MlflowClient(logger.client.tracking_uri).get_run(logger.run_id).data
    assert len(data.params) == 151 and data.params["stage.p149"] == "149"
    assert data.params["token"] == "https://***@h/x"
    assert data.metrics == {"loss": 0.5, "acc": 0.9}
    assert data.tags["shoal.flow"] == "ingest"


@pytest.mark.parametrize(
    ("uri", "source_type", "kept"),
    [
        ("/data/lake/events.parquet", "local", "/data/lake/events.parquet"),
        ("s3://lake/events/", "s3", "s3://lake/events/"),
        (
            "https://files.example/t.csv?token=abc123",
            "http",
            "https://files.example/t.csv?token=***",
        ),
        ("abfs://lake/events/", "fsspec", "abfs://lake/events/"),
    ],
)
def test_datasets_are_logged_with_a_source_mlflow_resolves(
    run: tuple[RunLogger, list[str]], uri: str, source_type: str, kept: str
) -> None:
    logger, _ = run
    logger.dataset(uri, "events", "d1g35t", "training", rows=12)
    client = MlflowClient(logger.client.tracking_uri)
    (given,) = client.get_run(logger.run_id).inputs.dataset_inputs
    assert given.dataset.source_type == source_type
    source = mlflow.data.get_source(given)  # MLflow's own reader of a logged dataset
    assert source._get_source_type() == source_type
    shown = source.url if isinstance(source, HTTPDatasetSource) else source.uri
    assert shown == kept
    assert isinstance(source, FsspecDatasetSource) == (source_type == "fsspec")


def test_a_dataset_file_is_linked_into_a_local_store_not_copied(
    run: tuple[RunLogger, list[str]], tmp_path: Path
) -> None:
    logger, _ = run
    dataset = tmp_path / "runs" / "clusterer.npz"
    dataset.parent.mkdir()
    dataset.write_bytes(b"first model")
    logger.dataset_file(dataset, "clusterer")
    logger.dataset_file(dataset, "clusterer")  # logged again: replaced, not an error
    client = MlflowClient(logger.client.tracking_uri)
    listed = [a.path for a in client.list_artifacts(logger.run_id, "clusterer")]
    assert listed == ["clusterer/clusterer.npz"]
    store = Path(local_file_uri_to_path(client.get_run(logger.run_id).info.artifact_uri))
    logged = store / "clusterer" / "clusterer.npz"
    assert logged.samefile(dataset)  # one file on disk, no second copy
    assert [p.name for p in logged.parent.iterdir()] == ["clusterer.npz"]
    # the catalog replaces a dataset by renaming a new file onto it: the run keeps its bytes
    replacement = tmp_path / "runs" / ".clusterer.npz.tmp"
    replacement.write_bytes(b"second model")
    replacement.replace(dataset)
    assert logged.read_bytes() == b"first model"


def test_a_dataset_file_is_copied_where_it_cannot_be_linked(
    run: tuple[RunLogger, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, calls = run
    dataset = tmp_path / "vocabulary.json"
    dataset.write_text("[]")

    def cross_device(*_: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr("infra.tracking.os.link", cross_device)
    logger.dataset_file(dataset, "ingest")
    assert "log_artifact" in calls
    client = MlflowClient(logger.client.tracking_uri)
    logged = Path(client.download_artifacts(logger.run_id, "ingest/vocabulary.json"))
    assert logged.read_text() == "[]" and not logged.samefile(dataset)
    assert not list(logged.parent.glob(".*.link"))
