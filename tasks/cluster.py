"""Cluster: pHDBSCAN over the hybrid vectors; persists what scoring's approximate_predict needs.

On a Ray cluster, with the run's outputs on storage every node reads (``SHOAL_STORAGE_URI`` or
an ``s3://`` output), the fit runs as a Ray task placed where the accelerator is: a GPU when the
cluster has one, else a node offering the custom resource ``SHOAL_CLUSTER_RESOURCE`` (default
``accelerator``), else any node. The task reads the hybrid vectors from storage and writes the
labels and the clusterer back; the Prefect task that launched it only logs. Elsewhere the fit
runs in the Prefect task's own process, as before.

With ``SHOAL_CLUSTER_KNN_TASKS=1`` the fit's CPU kNN graph is built by parallel Ray tasks, one
per chunk of cells (``infra.ray.ray_map``), wherever the fit itself runs: the same graph, so
the same labels, as in one process.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from prefect import get_run_logger, task
from pydantic import BaseModel, Field

from catalog.datasets import Catalog
from infra.memory import STAGE_HOOKS
from infra.ray import ensure_ray, on_cluster, ray_map
from infra.settings import get_settings
from infra.storage import is_remote
from infra.tracking import RunLogger
from ops.phdbscan import PHDBSCAN
from tasks.io import log_dataset


class ClusterParams(BaseModel):
    """pHDBSCAN's parameters, and where the fit runs (``placement``)."""

    min_cluster_size: int = Field(40, ge=2)
    min_samples: int | None = Field(10, ge=1, description="default: min_cluster_size")
    cluster_selection_method: Literal["eom", "leaf"] = "eom"
    mode: Literal["auto", "exact", "approximate"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    placement: Literal["auto", "local", "ray"] = Field(
        "auto", description="auto: a Ray task on a Ray cluster when outputs are on shared storage"
    )
    seed: int = 0


def fit_clusters(
    output_root: str, params: ClusterParams, knn_tasks: bool = False
) -> dict[str, Any]:
    """Fit pHDBSCAN on ``output_root``'s hybrid vectors; save labels and clusterer there.

    ``knn_tasks``: build the kNN graph as parallel Ray tasks (:func:`infra.ray.ray_map`).

    Returns
    -------
    dict
        The ``assignments`` digest, cluster count, noise share, fit seconds (in all and
        per phase, with the vectors' ``load`` and the outputs' ``write`` beside them), mode,
        kNN backend and the Ray node that ran the fit (``"local"`` outside Ray).
    """
    catalog = Catalog(output_root)
    loading = time.perf_counter()
    txn_ids, vectors = catalog.load_vectors("hybrid")
    started = time.perf_counter()
    model = PHDBSCAN(
        min_cluster_size=params.min_cluster_size,
        min_samples=params.min_samples,
        cluster_selection_method=params.cluster_selection_method,
        mode=params.mode,
        device=params.device,
        random_state=params.seed,
        knn_map=ray_map if knn_tasks else None,
    ).fit(vectors)
    seconds = time.perf_counter() - started
    writing = time.perf_counter()
    labels = model.labels_.astype(np.int64)
    assignments = pa.table(
        {
            "txn_id": txn_ids,
            "cluster": labels,
            "probability": model.probabilities_.astype(np.float64),
            "outlier_score": model.outlier_scores_.astype(np.float64),
        }
    )
    digest = catalog.save_table("assignments", assignments)
    catalog.save_stream("clusterer", model.save)
    # the stage's time outside the fit: reading the vectors, writing labels and clusterer
    io_seconds = {"load": started - loading, "write": time.perf_counter() - writing}
    return {
        "digest": digest,
        "n_clusters": int(labels.max() + 1),
        "noise_share": float((labels < 0).mean()),
        "seconds": seconds,
        "phase_seconds": {**model.fit_seconds_, **io_seconds},
        "mode": model.mode_,
        "knn_backend": model.knn_backend_,
        "node": _node_id(),
    }


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"


def placement_options(cluster_resources: dict[str, float], resource: str) -> dict[str, Any]:
    """Ray task options for the fit: a GPU, else one unit of ``resource``, else a CPU."""
    if cluster_resources.get("GPU", 0) >= 1:
        return {"num_gpus": 1}
    if cluster_resources.get(resource, 0) >= 1:
        return {"resources": {resource: 1}}
    return {"num_cpus": 1}


def _runs_on_ray(output_root: str, params: ClusterParams) -> bool:
    if params.placement == "auto":
        return on_cluster() and is_remote(output_root)
    return params.placement == "ray"


def _fit_on_ray(output_root: str, params: ClusterParams, knn_tasks: bool = False) -> dict[str, Any]:
    import ray

    ensure_ray()
    options = placement_options(ray.cluster_resources(), get_settings().cluster_resource)
    remote = ray.remote(fit_clusters).options(max_retries=1, **options)
    return dict(ray.get(remote.remote(output_root, params, knn_tasks)))


@task(name="cluster", **STAGE_HOOKS)
def cluster(output_root: str, params: ClusterParams, run_id: str) -> str:
    """Cluster the run's hybrid vectors, here or as a Ray task; log to MLflow; return a digest."""
    on_ray = _runs_on_ray(output_root, params)
    # read here, on the Prefect worker, where every other setting of the stage is read
    knn_tasks = get_settings().cluster_knn_tasks
    fit = _fit_on_ray if on_ray else fit_clusters
    fitted = fit(output_root, params, knn_tasks)
    tracker = RunLogger(run_id)
    tracker.params(
        {**params.model_dump(), "mode_used": fitted["mode"], "knn_tasks": knn_tasks},
        prefix="cluster.",
    )
    tracker.metrics(
        {
            "cluster.n_clusters": fitted["n_clusters"],
            "cluster.noise_share": fitted["noise_share"],
            "cluster.seconds": fitted["seconds"],
            **{f"cluster.seconds.{k}": v for k, v in fitted["phase_seconds"].items()},
        }
    )
    tracker.tags({"shoal.cluster.node": fitted["node"]})
    log_dataset(tracker, Catalog(output_root), "clusterer", "clusterer")
    get_run_logger().info(
        "pHDBSCAN (%s mode, %s kNN%s%s): %d clusters, %.1f%% noise, %.1f s",
        fitted["mode"],
        fitted["knn_backend"],
        " in Ray tasks" if knn_tasks and fitted["knn_backend"] == "cells" else "",
        f", Ray task on node {fitted['node']}" if on_ray else "",
        fitted["n_clusters"],
        100 * fitted["noise_share"],
        fitted["seconds"],
    )
    return str(fitted["digest"])
