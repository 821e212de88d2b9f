"""Cluster stabilities in numba are hdbscan's compiled ones to the bit."""

from __future__ import annotations

import numpy as np
import pytest
from hdbscan._hdbscan_tree import compute_stability
from sklearn.datasets import make_blobs

from ops.phdbscan import PHDBSCAN
from ops.phdbscan._stability import cluster_stability


@pytest.mark.parametrize("duplicates", [False, True])
def test_stabilities_are_hdbscans(duplicates: bool) -> None:
    X, _ = make_blobs(
        3_000, 5, centers=6, cluster_std=[0.3, 0.5, 1.0, 1.5, 2.0, 4.0], random_state=2
    )
    if duplicates:  # points at zero distance leave the tree at an infinite lambda
        X[:200] = X[0]
    tree = PHDBSCAN(min_cluster_size=15, min_samples=5).fit(X)._condensed_tree
    ours, theirs = cluster_stability(tree), compute_stability(tree)
    assert len(ours) > 6
    assert list(ours) == list(theirs)
    values = np.array(list(ours.values()))
    assert np.array_equal(values, np.array(list(theirs.values())), equal_nan=True)
    assert all(type(k) is type(t) for k, t in zip(ours, theirs, strict=True))
