"""The score flow against a champion trained by a tiny fraud_clustering run, real engines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from catalog.synthetic import generate_shop
from tests.flows.tiny import tiny_params

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness", "local_ray")]


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from flows.fraud_clustering import fraud_clustering

    params = tiny_params(sequences=800)
    params.features.dwell_fit_weight = 0.5  # the last hybrid block: dwell fit on the window's table
    data = generate_shop(tmp_path_factory.mktemp("train"), n_transactions=1500, seed=3)
    summary = fraud_clustering(str(data.events), str(data.transactions), params=params)
    client = MlflowClient()
    (version,) = client.search_model_versions(f"run_id='{summary['run_id']}'")
    client.set_registered_model_alias("shoal-encoder", "champion", version.version)
    return {"summary": summary, "data": data, "version": version.version}


def test_scoring_the_training_window_reproduces_its_clusters(
    champion: dict[str, Any], output_root: Path
) -> None:
    from flows.score import score

    data = champion["data"]
    result = score(str(data.events), str(data.transactions), str(output_root / "out"))
    assert result["champion"]["version"] == str(champion["version"])
    assert result["champion"]["source_run_id"] == champion["summary"]["run_id"]
    assert result["champion"]["root"] == str(output_root / "out" / "champion")  # as published
    assert (output_root / "out" / "champion" / "clusterer.npz").exists()

    trained = pd.read_parquet(Path(champion["summary"]["output"]) / "clusters.parquet")
    scores = pd.read_parquet(output_root / "out" / "scores.parquet")
    assert list(scores.columns) == ["txn_id", "cluster", "probability", "risky", "rule_text"]
    both = trained.merge(scores, on="txn_id", suffixes=("_fit", "_score"))
    assert len(both) == len(trained) == len(scores)
    clustered = both["cluster_fit"] >= 0
    agree = (both.loc[clustered, "cluster_fit"] == both.loc[clustered, "cluster_score"]).mean()
    assert agree > 0.9, f"only {agree:.0%} of clustered training points keep their cluster"
    assert (both["risky_fit"] == both["risky_score"]).mean() > 0.9

    run = MlflowClient().get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["champion.version"] == str(champion["version"])
    assert run.data.metrics["score.rows"] == len(scores)


def test_new_transactions_get_hits_on_risky_clusters_with_rule_text(
    champion: dict[str, Any], output_root: Path
) -> None:
    from flows.cli import app

    data = generate_shop(output_root / "new", n_transactions=1000, seed=11)
    out = output_root / "out"
    args = ["score", "--events", str(data.events), "--transactions", str(data.transactions)]
    result = CliRunner().invoke(app, [*args, "--output", str(out), "--alias", "champion"])
    assert result.exit_code == 0, result.output
    printed = " ".join(result.output.split())
    assert "on risky clusters" in printed and "Hits by risky cluster" in printed

    scores = pd.read_parquet(out / "scores.parquet")
    hits = pd.read_parquet(out / "hits.parquet")
    assert len(scores) == pd.read_parquet(data.transactions)["txn_id"].nunique()
    assert len(hits) > 0 and hits["risky"].all() and (hits["cluster"] >= 0).all()
    assert set(hits["txn_id"]) == set(scores.loc[scores["risky"], "txn_id"])
    assert hits["rule_text"].str.len().gt(0).any()
    assert not scores.loc[~scores["risky"], "rule_text"].str.len().gt(0).any()
    # the hits are the planted rings far more often than transactions at large
    truth = pd.read_parquet(data.truth).set_index("txn_id")["is_fraud"]
    hit_fraud = truth.loc[hits["txn_id"]].mean()
    assert hit_fraud > 3 * truth.mean(), f"{hit_fraud:.0%} of hits vs {truth.mean():.0%} overall"

    run_id = printed.rsplit("MLflow run:", 1)[1].split()[0]
    artifacts = {a.path for a in MlflowClient().list_artifacts(run_id, "score")}
    assert artifacts == {"score/scores.parquet", "score/hits.parquet"}
    assert MlflowClient().get_run(run_id).data.metrics["score.hits"] == len(hits)


def test_an_unknown_alias_is_named(champion: dict[str, Any], output_root: Path) -> None:
    from flows.cli import app

    data = champion["data"]
    args = ["score", "--events", str(data.events), "--transactions", str(data.transactions)]
    out = output_root / "unknown"
    result = CliRunner().invoke(app, [*args, "--output", str(out), "--alias", "nope"])
    assert result.exit_code == 2
    assert "no version aliased 'nope'" in " ".join(result.output.split())
    assert not out.exists()  # nothing published for a refused run


def test_an_output_outside_the_root_is_refused(
    champion: dict[str, Any], output_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from flows.cli import app

    data = champion["data"]
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "scores"
    args = ["score", "--events", str(data.events), "--transactions", str(data.transactions)]
    result = CliRunner().invoke(app, [*args, "--output", str(elsewhere)])
    assert result.exit_code == 4
    assert "outside the output root" in " ".join(result.output.split())
    assert not elsewhere.exists()


def test_the_champion_state_maps_rows_as_in_training_without_refitting(
    champion: dict[str, Any],
) -> None:
    from catalog.datasets import Catalog
    from tasks.io import load_sequences
    from tasks.score import ChampionState

    trained = Catalog(champion["summary"]["output"])
    state = ChampionState.load(champion["summary"]["output"])  # the state a champion ships
    txn_ids, tokens, dwell = load_sequences(trained.root)
    emb_ids, embeddings = trained.load_vectors("embeddings")
    order = pd.Index(emb_ids).get_indexer(txn_ids)
    hybrid_ids, hybrid = trained.load_vectors("hybrid")
    expected = hybrid[pd.Index(hybrid_ids).get_indexer(txn_ids)]
    transactions = trained.load_frame("transactions").set_index("txn_id").loc[txn_ids]
    vocabulary = trained.load_json("vocabulary")

    vectors = state.hybrid(transactions, embeddings[order], (tokens, dwell), vocabulary)
    assert vectors == pytest.approx(expected, abs=1e-5)
    # a few rows alone keep their dwell-fit block (the last two columns, see the fixture): the
    # page table is the window's, not refitted on the batch (reuse counts do count the batch)
    few = slice(0, 7)
    alone = state.hybrid(
        transactions.iloc[few], embeddings[order][few], (tokens[few], dwell[few]), vocabulary
    )
    assert alone[:, -2:] == pytest.approx(expected[few, -2:], abs=1e-5)
    assert np.ptp(expected[:, -2:], axis=0).min() > 0  # and that block varies
