"""Score: new transactions assigned to the champion's clusters; hits on risky ones, with rules.

Everything the champion learnt comes through MLflow, so scoring works against a tracking server
as well as the embedded store: the encoder and its vocabulary from the registry (MLflow's own
loader), and from the run that logged that encoder the fitted feature spec, typical page
dwell, hybrid scaling, clusterer and the per-cluster risk and rule text.
"""

from __future__ import annotations

import json
import posixpath
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pytorch
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from prefect import get_run_logger, task
from pydantic import BaseModel
from torch import nn

from catalog.datasets import DATASETS, Catalog
from infra.settings import get_settings
from infra.tracking import RunLogger
from ops.features import (
    FeatureSpec,
    HybridScaling,
    PageDwell,
    apply_hybrid,
    dwell_fit,
    fit_block,
    transform_features,
)
from ops.phdbscan import PHDBSCAN
from ops.risk import attach_risk, translate_tokens
from ops.sequence import embed
from tasks.champion import Champion, find_champion
from tasks.ingest import IngestParams
from tasks.ingest_provenance import PROVENANCE_FILE
from tasks.io import load_sequences, log_dataset
from tasks.risk import load_clusterer

# The champion's state: catalog name -> artifact folder of the run that logged the encoder.
CHAMPION_ARTIFACTS = {
    "feature_spec": "features",
    "hybrid_scaling": "features",
    "page_dwell": "features",
    "clusterer": "clusterer",
    "clusters_summary": "outputs",
}
# New data keeps every event name at ingest; ``translate_tokens`` then maps them onto the
# model's vocabulary, so an event is out-of-vocabulary exactly when the model never knew it.
KEEP_EVERY_EVENT = 1_000_000


class StagedChampion(BaseModel):
    """The champion that scores, where its state was copied, and how to ingest for it."""

    champion: Champion
    root: str
    ingest: IngestParams


@dataclass(frozen=True)
class ChampionState:
    """The champion's fitted, non-neural state: hybrid vector in, cluster and risk out."""

    spec: FeatureSpec
    scaling: HybridScaling
    page_dwell: PageDwell
    clusterer: PHDBSCAN
    clusters: pd.DataFrame

    @classmethod
    def load(cls, root: str) -> ChampionState:
        """Load the state :func:`fetch_champion` copied to ``root``."""
        catalog = Catalog(root)
        return cls(
            spec=FeatureSpec.from_dict(catalog.load_json("feature_spec")),
            scaling=HybridScaling.from_dict(catalog.load_json("hybrid_scaling")),
            page_dwell=PageDwell.from_dict(catalog.load_json("page_dwell")),
            clusterer=load_clusterer(catalog),
            clusters=catalog.load_frame("clusters_summary", ["cluster", "risky", "rule_text"]),
        )

    def hybrid(
        self,
        transactions: pd.DataFrame,
        embeddings: np.ndarray,
        sequences: tuple[list[np.ndarray], list[np.ndarray]],
        vocabulary: list[str],
    ) -> np.ndarray:
        """New rows in the clustered space.

        The fitted spec, page dwell table and scaling, never refitted. ``sequences`` (tokens in
        ``vocabulary``'s ids, dwell) align with rows.
        """
        features = transform_features(self.spec, transactions)
        fit = fit_block(dwell_fit(self.page_dwell, *sequences, vocabulary))
        return apply_hybrid(self.scaling, [embeddings, features, fit])


def _download(run_id: str, artifact_path: str, tmp: str) -> Path:
    try:
        return Path(
            mlflow.artifacts.download_artifacts(
                run_id=run_id,
                artifact_path=artifact_path,
                dst_path=tmp,
                tracking_uri=get_settings().tracking_uri,
            )
        )
    except (MlflowException, OSError) as err:
        raise FileNotFoundError(
            f"the champion's run {run_id} has no artifact '{artifact_path}': "
            "retrain it with this version of Shoal"
        ) from err


def load_registered_encoder(model_uri: str) -> tuple[nn.Module, list[str]]:
    """The encoder (MLflow's PyTorch loader) and the vocabulary logged beside it."""
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp)
        model = mlflow.pytorch.load_model(local)
        vocabulary = json.loads((Path(local) / "extra_files" / "vocabulary.json").read_text())
    return model.eval(), vocabulary


@task(name="champion")
def fetch_champion(alias: str, output_root: str, run_id: str) -> StagedChampion:
    """Resolve ``alias`` once and copy the champion's state next to the scores it produces.

    The version is pinned, so an alias moved during scoring cannot mix two models.
    """
    champion = find_champion(alias)
    if champion is None:
        name = get_settings().registered_model
        raise LookupError(f"registered model '{name}' has no version aliased '{alias}'")
    root = posixpath.join(output_root.rstrip("/"), "champion")
    catalog = Catalog(root)
    with tempfile.TemporaryDirectory() as tmp:
        for dataset, folder in CHAMPION_ARTIFACTS.items():
            path = _download(champion.source_run_id, f"{folder}/{DATASETS[dataset].filename}", tmp)
            catalog.save_bytes(dataset, path.read_bytes())
        lineage_path = _download(champion.source_run_id, f"ingest/{PROVENANCE_FILE}", tmp)
        lineage: dict[str, Any] = json.loads(lineage_path.read_text())
    ingest = IngestParams.model_validate(
        {**lineage["params"], "start": None, "end": None, "vocabulary_size": KEEP_EVERY_EVENT}
    )
    RunLogger(run_id).params(
        {
            "champion.model": champion.name,
            "champion.alias": alias,
            "champion.version": champion.version,
            "champion.source_run_id": champion.source_run_id,
        }
    )
    get_run_logger().info(
        "champion: %s version %s (alias %s), trained in run %s",
        champion.name,
        champion.version,
        alias,
        champion.source_run_id,
    )
    return StagedChampion(champion=champion, root=root, ingest=ingest)


@task(name="score")
def score_transactions(output_root: str, staged: StagedChampion, run_id: str) -> dict[str, float]:
    """Assign the new transactions to the champion's clusters; save scores and hits.

    Returns
    -------
    dict
        The metrics logged to the run (rows, hits, shares and throughput).
    """
    champion = staged.champion
    catalog = Catalog(output_root)
    encoder, vocabulary = load_registered_encoder(champion.model_uri)
    state = ChampionState.load(staged.root)
    txn_ids, tokens, dwell = load_sequences(output_root)
    tokens = translate_tokens(tokens, catalog.load_json("vocabulary"), vocabulary)
    transactions = catalog.load_frame("transactions").set_index("txn_id", drop=False)

    started = time.perf_counter()
    # The serving wrapper's inner encoder, batched like training's embedding step.
    embeddings = embed(encoder.encoder, tokens, dwell, staged.ingest.max_sequence_length)
    embedded = time.perf_counter()
    vectors = state.hybrid(transactions.loc[txn_ids], embeddings, (tokens, dwell), vocabulary)
    labels, probabilities = state.clusterer.approximate_predict(vectors)
    assigned = time.perf_counter()

    scores = attach_risk(txn_ids, labels, probabilities, state.clusters)
    hits = scores.loc[scores["risky"]].reset_index(drop=True)
    catalog.save_table("scores", scores)
    catalog.save_table("hits", hits)
    n = len(scores)
    metrics = {
        "score.rows": float(n),
        "score.hits": float(len(hits)),
        "score.hit_rate": len(hits) / max(n, 1),
        "score.assigned_share": float((scores["cluster"] >= 0).mean()) if n else 0.0,
        "score.embed_seconds": embedded - started,
        "score.assign_seconds": assigned - embedded,
        "score.assign_txn_per_second": n / max(assigned - embedded, 1e-9),
        "score.end_to_end_txn_per_second": n / max(assigned - started, 1e-9),
    }
    tracker = RunLogger(run_id)
    tracker.metrics(metrics)
    for name in ("scores", "hits"):
        log_dataset(tracker, catalog, name, "score")
    get_run_logger().info(
        "scored %d transactions with %s v%s: %d hits on risky clusters (%.0f txn/s assignment)",
        n,
        champion.name,
        champion.version,
        len(hits),
        metrics["score.assign_txn_per_second"],
    )
    return metrics
