"""The whole flow on tiny data with the real engines: Prefect, Ray Train (2 workers), MLflow."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from catalog.synthetic import generate_marketplace, generate_shop
from ops.risk import FLAG_REASONS
from tests.chromium import needs_chromium, render
from tests.flows.tiny import tiny_params

pytestmark = [
    pytest.mark.slow,
    pytest.mark.usefixtures("prefect_harness", "local_ray", "output_root"),
]

OUTPUTS = [
    "clusters.parquet",
    "clusters_summary.parquet",
    "summary.json",
    "rules.json",
    "report.html",
    "quarantine.parquet",
]
STAGES = {"ingest", "pretrain", "embed", "features", "cluster", "evaluate", "explain", "report"}


@pytest.fixture(scope="module")
def shop_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from flows.fraud_clustering import fraud_clustering

    data = generate_shop(tmp_path_factory.mktemp("shop"), n_transactions=1500, seed=3)
    summary = fraud_clustering(
        str(data.events),
        str(data.transactions),
        params=tiny_params(epochs=2, sequences=800, workers=2),
    )
    return {"summary": summary, "data": data}


def test_every_output_is_written_with_the_documented_columns(shop_run: dict[str, Any]) -> None:
    out = Path(shop_run["summary"]["output"])
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    clusters = pd.read_parquet(out / "clusters.parquet")
    assert list(clusters.columns) == [
        "txn_id", "cluster", "probability", "outlier_score", "risky", "flag_reason"
    ]  # fmt: skip
    accepted = shop_run["summary"]["ingest"]["transactions"]["accepted"]
    assert len(clusters) == accepted == clusters["txn_id"].nunique()
    assert clusters["cluster"].max() >= 1, "expected several clusters on data with rings"
    # noise is flagged by a risky node it fell out of, its soft membership, a rule or its
    # neighbours, never as a cluster
    noise = clusters.loc[clusters["cluster"] < 0]
    assert noise["risky"].eq(noise["flag_reason"].notna()).all()
    assert not noise["flag_reason"].eq("cluster").any()
    flags = json.loads((out / "flags.json").read_text())
    assert set(flags["counts"]) == {*FLAG_REASONS, "none"}
    for calibrated in ("membership", "neighbours"):  # each with its precision-recall table
        assert {"threshold", "calibrated", "table"} <= set(flags[calibrated])
    summary = pd.read_parquet(out / "clusters_summary.parquet")
    assert {"cluster", "size", "risky", "risk_reason", "rule_text", "narrative"} <= set(summary)
    # paths stay lists of page names in every output, never their text form
    modal = summary["modal_path"].dropna()
    assert len(modal) and all(all(isinstance(page, str) for page in p) for p in modal)
    path_of = pd.read_parquet(out / "behaviour.parquet").set_index("txn_id")["path"]
    review = pd.read_parquet(out / "review.parquet")
    assert len(review)
    for txn, path in zip(review["txn_id"], review["path"], strict=True):
        assert list(path) == list(path_of[txn])


def test_rows_in_equal_accepted_plus_quarantined(shop_run: dict[str, Any]) -> None:
    for counts in shop_run["summary"]["ingest"].values():
        assert counts["rows_in"] == counts["accepted"] + counts["quarantined"]
    assert (
        shop_run["summary"]["ingest"]["events"]["rows_in"]
        == pq.read_metadata(shop_run["data"].events).num_rows
    )


def test_mlflow_run_holds_every_artifact(shop_run: dict[str, Any]) -> None:
    client = MlflowClient()
    run = client.get_run(shop_run["summary"]["run_id"])
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "pretrain.val_loss")
    assert [m.step for m in history] == list(range(len(history))) and len(history) >= 1
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "outputs")}
    assert {f"outputs/{n}" for n in OUTPUTS if n != "quarantine.parquet"} <= artifacts
    assert client.list_artifacts(run.info.run_id, "ingest")
    assert client.list_artifacts(run.info.run_id, "embeddings")
    names = {d.dataset.name for d in run.inputs.dataset_inputs}
    assert {"events", "transactions"} <= names
    assert "cluster.min_cluster_size" in run.data.params
    versions = client.search_model_versions("name='shoal-encoder'")
    assert any(v.run_id == run.info.run_id for v in versions)


def test_prefect_shows_each_stage_as_a_task(shop_run: dict[str, Any]) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter

    run = MlflowClient().get_run(shop_run["summary"]["run_id"])
    flow_run_id = run.data.tags["prefect.flow_run_id"]

    async def completed_tasks() -> set[str]:
        async with get_client() as client:
            tasks = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id={"any_": [flow_run_id]})
            )
        return {t.name.rsplit("-", 1)[0] for t in tasks if t.state and t.state.is_completed()}

    assert asyncio.run(completed_tasks()) >= STAGES  # a stage may run sub-tasks of its own


def test_cli_runs_on_another_generators_files(tmp_path: Path) -> None:
    """Other page names, CSV + gzip JSON Lines, extra columns of every kind: no code changes."""
    from flows.cli import app

    data = generate_marketplace(tmp_path / "in", n_transactions=1500, seed=5)
    config = tmp_path / "params.yaml"
    config.write_text(tiny_params(epochs=2, sequences=800, workers=2).model_dump_json())
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "run",
            "--events",
            str(data.events),
            "--transactions",
            str(data.transactions),
            "--output",
            str(out),
            "--config",
            str(config),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Risky clusters" in result.output
    clusters = pd.read_parquet(out / "clusters.parquet")
    assert len(clusters) == 1500
    spec = (out / "feature_spec.json").read_text()
    for column in ("seller_rating", "is_prime", "channel", "ip_prefix"):
        assert column in spec


def test_cli_rejects_a_missing_required_column(tmp_path: Path) -> None:
    from flows.cli import app

    data = generate_shop(tmp_path / "in", n_transactions=300, seed=1)
    broken = tmp_path / "transactions.parquet"
    pd.read_parquet(data.transactions).drop(columns="amount").to_parquet(broken)
    result = CliRunner().invoke(
        app,
        [
            "run",
            "--events",
            str(data.events),
            "--transactions",
            str(broken),
            "--output",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 2
    assert "amount" in result.output and str(broken) in result.output.replace("\n", "")
    assert not (tmp_path / "out").exists()


@needs_chromium
def test_report_renders_in_a_real_browser(shop_run: dict[str, Any], tmp_path: Path) -> None:
    report = Path(shop_run["summary"]["output"]) / "report.html"
    dom, log, pixels = render(report, tmp_path / "report.png")
    assert "Uncaught" not in log, log
    assert "Risky clusters" in dom and dom.count("<img") >= 3
    assert pixels.std() > 0.05, "the page rendered blank"
