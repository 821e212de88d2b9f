"""pHDBSCAN's kNN graph as parallel Ray tasks: the graph and the labels of one process.

A real local Ray of two CPUs; its one node offers the ``accelerator`` resource, so the
cluster stage's own Ray task (which then starts the kNN tasks from inside it) is placed too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs

from catalog.datasets import Catalog
from infra.ray import ray_map
from ops.phdbscan._knn_graph import cell_knn
from tasks.cluster import ClusterParams, _fit_on_ray, fit_clusters

pytest.importorskip("faiss")

X, _ = make_blobs(4000, 8, centers=6, cluster_std=2.0, random_state=0)
X = X.astype(np.float32)


@pytest.fixture(scope="module")
def two_cpu_ray() -> Iterator[None]:
    import ray

    if ray.is_initialized():
        ray.shutdown()
    # "local": a Ray of our own, not one another process started on this machine
    ray.init(address="local", num_cpus=2, resources={"accelerator": 1}, include_dashboard=False)
    yield
    ray.shutdown()


@pytest.mark.parametrize(
    ("exact", "cells"),
    [(True, {"n_cells": 40, "n_probe": 3}), (False, {})],
    ids=["exact", "approximate"],
)
def test_ray_tasks_build_the_graph_of_the_process_to_the_bit(
    two_cpu_ray: None, exact: bool, cells: dict
) -> None:
    chunks: list[int] = []

    def counting_ray_map(fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        items = list(items)
        chunks.append(len(items))
        return ray_map(fn, items)

    stats: dict = {}
    dist, idx = cell_knn(X, 12, exact=exact, **cells)
    dist_r, idx_r = cell_knn(X, 12, exact=exact, stats=stats, map_chunks=counting_ray_map, **cells)
    assert chunks == [16]
    if exact:
        assert stats["uncertified"] > 0  # lists searched again against all rows, in the tasks
    np.testing.assert_array_equal(idx_r, idx)
    np.testing.assert_array_equal(dist_r, dist)


@pytest.mark.parametrize("mode", ["exact", "approximate"])
def test_the_cluster_stage_with_knn_tasks_writes_the_labels_of_the_process(
    two_cpu_ray: None, tmp_path: Path, mode: str
) -> None:
    txn_ids = np.array([f"t{i}" for i in range(len(X))])
    params = ClusterParams(min_cluster_size=25, min_samples=8, mode=mode, placement="ray")
    roots = [tmp_path / "process", tmp_path / "knn-tasks", tmp_path / "ray-task-knn-tasks"]
    for root in roots:
        Catalog(str(root)).save_vectors("hybrid", txn_ids, X)

    in_process = fit_clusters(str(roots[0]), params)
    with_knn_tasks = fit_clusters(str(roots[1]), params, knn_tasks=True)
    nested = _fit_on_ray(str(roots[2]), params, knn_tasks=True)

    assert in_process["mode"] == with_knn_tasks["mode"] == nested["mode"] == mode
    assert with_knn_tasks["knn_backend"] == "cells"
    assert in_process["n_clusters"] >= 5
    labels = [pd.read_parquet(Catalog(str(r)).uri("assignments")) for r in roots]
    pd.testing.assert_frame_equal(labels[1], labels[0], check_exact=True)
    pd.testing.assert_frame_equal(labels[2], labels[0], check_exact=True)
