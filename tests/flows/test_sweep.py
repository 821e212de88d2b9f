"""The sweep flow on tiny data with the real engines: Ray Tune + Ray Train, MLflow, Prefect."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from catalog.synthetic import generate_shop
from flows.params import PipelineParams

pytestmark = [pytest.mark.soak, pytest.mark.usefixtures("prefect_harness", "local_ray")]

BASE = {
    "pretrain": {
        "epochs": 1,
        "max_train_sequences": 500,
        "encoder": {"token_dim": 8, "time_dim": 4, "hidden_size": 8},
    },
    "cluster": {"min_cluster_size": 15, "min_samples": 5},
}
SPACE = {
    "num_samples": 8,
    "max_concurrent": 2,
    "seed": 1,
    "space": {
        "pretrain.encoder.embedding_dim": {"choice": [4, 8]},
        "pretrain.objective": {"choice": ["reconstruction", "contrastive"]},
        "pretrain.temperature": {"loguniform": [0.05, 0.5]},
        "features.embedding_weight": {"uniform": [0.5, 2.0]},
        "cluster.min_cluster_size": {"choice": [10, 20]},
        "cluster.min_samples": {"randint": [3, 8]},
    },
}


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from flows.sweep import sweep

    tmp = tmp_path_factory.mktemp("sweep")
    data = generate_shop(tmp / "in", n_transactions=1000, seed=7)
    (tmp / "space.yaml").write_text(yaml.safe_dump(SPACE))
    (tmp / "base.yaml").write_text(yaml.safe_dump(BASE))
    result = sweep(
        str(data.events),
        str(data.transactions),
        str(tmp / "space.yaml"),
        base_config=str(tmp / "base.yaml"),
    )
    return {"result": result, "out": Path(result["output"])}


def test_every_trial_is_a_finished_child_run_of_one_parent(swept: dict[str, Any]) -> None:
    client = MlflowClient()
    parent = client.get_run(swept["result"]["run_id"])
    assert parent.info.status == "FINISHED"
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    assert len(children) == 8
    assert {c.info.status for c in children} == {"FINISHED"}
    for child in children:
        # quality.dbcv is NaN, so not logged, when a trial finds fewer than two clusters
        assert {"sweep.score", "cluster.n_clusters"} <= set(child.data.metrics)
        assert child.data.params["pretrain.num_workers"] == "1"
    spans = sorted((c.info.start_time, c.info.end_time) for c in children)
    running_at_each_start = [sum(s <= start < e for s, e in spans) for start, _ in spans]
    assert max(running_at_each_start) == 2, "trials must run two at a time, never more"
    embedding_dims = {c.data.params["pretrain.encoder.embedding_dim"] for c in children}
    assert len(embedding_dims) == 2, "the space was not sampled"
    # trial encoders are registered apart from the served model
    sweep_versions = client.search_model_versions("name='shoal-encoder-sweep'")
    assert {c.info.run_id for c in children} <= {v.run_id for v in sweep_versions}
    assert parent.data.metrics["sweep.n_trials"] == 8
    assert parent.data.tags["shoal.sweep.best_run_id"] in {c.info.run_id for c in children}
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "sweep")}
    assert {"sweep/sweep_results.parquet", "sweep/best_config.yaml"} <= artifacts


def test_the_table_ranks_trials_by_the_documented_score(swept: dict[str, Any]) -> None:
    from ops.evaluation import trial_score

    table = pd.read_parquet(swept["out"] / "sweep_results.parquet")
    assert len(table) == 8 and list(table["rank"]) == list(range(1, 9))
    assert table["score"].is_monotonic_decreasing
    client = MlflowClient()
    for row in table.itertuples():
        metrics = client.get_run(row.run_id).data.metrics
        assert row.score == pytest.approx(trial_score(metrics))  # the shop has labels
    assert table.loc[0, "run_id"] == swept["result"]["best_run_id"]


def test_the_best_configuration_is_a_run_config(swept: dict[str, Any]) -> None:
    from flows.cli import _params

    path = Path(swept["result"]["best_config"])
    params = _params(path)  # what `shoal run --config` validates
    assert params == PipelineParams.from_yaml(path)
    best = pd.read_parquet(swept["out"] / "sweep_results.parquet").iloc[0]
    assert params.cluster.min_cluster_size == best["cluster.min_cluster_size"]
    assert params.features.embedding_weight == pytest.approx(best["features.embedding_weight"])
    assert params.pretrain.objective == best["pretrain.objective"]
    assert params.pretrain.epochs == 1, "the base configuration was not kept"
    assert params.pretrain.num_workers == PipelineParams().pretrain.num_workers
