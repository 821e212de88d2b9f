"""Cluster stabilities in numba are hdbscan's compiled ones to the bit."""

from __future__ import annotations

import numpy as np
import pytest
from hdbscan._hdbscan_tree import compute_stability

from ops.phdbscan._stability import cluster_stability
from tests.ops.phdbscan.references import blob_tree


@pytest.mark.parametrize("duplicates", [False, True])
def test_stabilities_are_hdbscans(duplicates: bool) -> None:
    tree = blob_tree(duplicates, seed=2)
    ours, theirs = cluster_stability(tree), compute_stability(tree)
    assert len(ours) > 6
    assert list(ours) == list(theirs)
    values = np.array(list(ours.values()))
    assert np.array_equal(values, np.array(list(theirs.values())), equal_nan=True)
    assert all(type(k) is type(t) for k, t in zip(ours, theirs, strict=True))
