"""GLOSH in numba gives hdbscan's compiled scores to the bit."""

from __future__ import annotations

import numpy as np
import pytest
from hdbscan._hdbscan_tree import outlier_scores
from sklearn.datasets import make_blobs

from ops.phdbscan import PHDBSCAN
from ops.phdbscan._glosh import glosh_scores


@pytest.mark.parametrize("duplicates", [False, True])
def test_glosh_scores_are_hdbscans(duplicates: bool) -> None:
    X, _ = make_blobs(
        3_000, 5, centers=6, cluster_std=[0.3, 0.5, 1.0, 1.5, 2.0, 4.0], random_state=1
    )
    if duplicates:  # points at zero distance leave the tree at an infinite lambda
        X[:200] = X[0]
    tree = PHDBSCAN(min_cluster_size=15, min_samples=5).fit(X)._condensed_tree
    ours = glosh_scores(tree)
    # NaN too where hdbscan gives NaN: a finite lambda in a cluster whose deepest is infinite
    assert np.array_equal(ours, np.asarray(outlier_scores(tree)), equal_nan=True)
    scored = ours[np.isfinite(ours)]
    assert len(ours) == len(X) and (scored > 0).any() and ((scored >= 0) & (scored <= 1)).all()
    assert glosh_scores(tree[:0]).shape == (0,)
