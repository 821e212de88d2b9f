"""Cluster selection in numba gives hdbscan's get_clusters to the bit."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hdbscan._hdbscan_tree import compute_stability, get_clusters

from ops.phdbscan import PHDBSCAN
from ops.phdbscan._selection import select_clusters
from tests.ops.phdbscan.references import blob_tree


@pytest.mark.parametrize("duplicates", [False, True])
@pytest.mark.parametrize("method", ["eom", "leaf"])
def test_selection_is_hdbscans(duplicates: bool, method: str) -> None:
    tree = blob_tree(duplicates, seed=0)
    lam = tree["lambda_val"][np.isfinite(tree["lambda_val"]) & (tree["lambda_val"] > 0)]
    epsilons = [0.0, float(np.quantile(1 / lam, 0.5)), float(np.quantile(1 / lam, 0.95))]
    settings = itertools.product([False, True], epsilons, [0, 150], [np.inf, epsilons[2]])
    seen = set()
    for single, eps, max_size, eps_max in settings:
        kw = {
            "cluster_selection_method": method,
            "allow_single_cluster": single,
            "cluster_selection_epsilon": eps,
            "max_cluster_size": max_size,
            "cluster_selection_epsilon_max": eps_max,
        }
        theirs = get_clusters(tree, compute_stability(tree), **kw)
        ours = select_clusters(tree, compute_stability(tree), **kw)
        for a, b in zip(ours, theirs, strict=True):
            assert np.array_equal(a, np.asarray(b), equal_nan=True), kw
        seen.add(int(ours[0].max()) + 1)
    assert len(seen) >= 2  # the settings select different clusterings


def test_a_single_cluster_where_allowed() -> None:
    X = np.random.default_rng(0).normal(size=(500, 3))
    tree = PHDBSCAN(min_cluster_size=20, min_samples=5).fit(X)._condensed_tree
    for eps in (0.0, 0.5):
        kw = {"allow_single_cluster": True, "cluster_selection_epsilon": eps}
        theirs = get_clusters(tree, compute_stability(tree), **kw)
        ours = select_clusters(tree, compute_stability(tree), **kw)
        for a, b in zip(ours, theirs, strict=True):
            assert np.array_equal(a, np.asarray(b), equal_nan=True)
