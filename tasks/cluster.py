"""Cluster: pHDBSCAN over the hybrid vectors; persists what scoring's approximate_predict needs."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from pydantic import BaseModel, Field

from catalog.datasets import Catalog
from infra.tracking import RunLogger
from ops.phdbscan import PHDBSCAN
from tasks.io import log_dataset


class ClusterParams(BaseModel):
    """pHDBSCAN's parameters for the cluster stage."""

    min_cluster_size: int = Field(40, ge=2)
    min_samples: int | None = Field(10, ge=1, description="default: min_cluster_size")
    cluster_selection_method: Literal["eom", "leaf"] = "eom"
    mode: Literal["auto", "exact", "approximate"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 0


@task(name="cluster")
def cluster(output_root: str, params: ClusterParams, run_id: str) -> str:
    """Cluster the hybrid vectors with pHDBSCAN; save assignments and the fitted clusterer.

    Returns
    -------
    str
        The digest of the ``assignments`` dataset.
    """
    catalog = Catalog(output_root)
    txn_ids, vectors = catalog.load_vectors("hybrid")
    started = time.perf_counter()
    model = PHDBSCAN(
        min_cluster_size=params.min_cluster_size,
        min_samples=params.min_samples,
        cluster_selection_method=params.cluster_selection_method,
        mode=params.mode,
        device=params.device,
        random_state=params.seed,
    ).fit(vectors)
    seconds = time.perf_counter() - started
    assignments = pd.DataFrame(
        {
            "txn_id": txn_ids,
            "cluster": model.labels_.astype(np.int64),
            "probability": model.probabilities_.astype(np.float64),
            "outlier_score": model.outlier_scores_.astype(np.float64),
        }
    )
    digest = catalog.save_table("assignments", assignments)
    with tempfile.TemporaryDirectory() as tmp:
        model.save(f"{tmp}/clusterer.npz")
        catalog.save_bytes("clusterer", Path(f"{tmp}/clusterer.npz").read_bytes())
    n_clusters = int(assignments["cluster"].max() + 1)
    noise = float((assignments["cluster"] < 0).mean())
    tracker = RunLogger(run_id)
    tracker.params({**params.model_dump(), "mode_used": model.mode_}, prefix="cluster.")
    tracker.metrics(
        {"cluster.n_clusters": n_clusters, "cluster.noise_share": noise, "cluster.seconds": seconds}
    )
    log_dataset(tracker, catalog, "clusterer", "clusterer")
    get_run_logger().info(
        "pHDBSCAN (%s mode, %s kNN): %d clusters, %.1f%% noise, %.1f s",
        model.mode_,
        model.knn_backend_,
        n_clusters,
        100 * noise,
        seconds,
    )
    return digest
