"""The cluster stage as a Ray task placed by resources.

Same labels as in-process, on the node that offers the accelerator.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from catalog.datasets import Catalog
from tasks.cluster import ClusterParams, _fit_on_ray, fit_clusters, placement_options


def test_a_gpu_wins_then_the_custom_resource_then_any_cpu() -> None:
    assert placement_options({"CPU": 8, "GPU": 2, "accelerator": 1}, "accelerator") == {
        "num_gpus": 1
    }
    assert placement_options({"CPU": 8, "accelerator": 1}, "accelerator") == {
        "resources": {"accelerator": 1}
    }
    assert placement_options({"CPU": 8, "big": 1}, "accelerator") == {"num_cpus": 1}


@pytest.fixture(scope="module")
def ray_with_accelerator() -> Iterator[str]:
    """A local Ray whose one node offers the custom ``accelerator`` resource; its node id."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    # "local": a Ray of our own, not one another process started on this machine
    ray.init(address="local", num_cpus=1, resources={"accelerator": 1}, include_dashboard=False)
    yield ray.get_runtime_context().get_node_id()
    ray.shutdown()


def test_the_ray_task_writes_the_same_labels_as_the_process(
    tmp_path: Path, ray_with_accelerator: str
) -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=8, size=(4, 6))
    vectors = np.concatenate([c + rng.normal(size=(60, 6)) for c in centres])
    txn_ids = np.array([f"t{i}" for i in range(len(vectors))])
    params = ClusterParams(min_cluster_size=15, min_samples=5, placement="ray")
    roots = [tmp_path / "process", tmp_path / "ray"]
    for root in roots:
        Catalog(str(root)).save_vectors("hybrid", txn_ids, vectors)

    in_process = fit_clusters(str(roots[0]), params)
    on_ray = _fit_on_ray(str(roots[1]), params)

    assert on_ray["node"] == ray_with_accelerator
    labels = [pd.read_parquet(Catalog(str(r)).uri("assignments")) for r in roots]
    pd.testing.assert_frame_equal(labels[0], labels[1])
    assert on_ray["n_clusters"] == in_process["n_clusters"] == 4
    assert Catalog(str(roots[1])).load_bytes("clusterer")
