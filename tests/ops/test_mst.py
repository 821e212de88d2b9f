"""The exact MST's pruning bound must never exceed a true distance, and must prune blobs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.datasets import make_blobs

from ops.mst import _projection_bounds


def _bounds_and_truth(singletons: int) -> tuple[np.ndarray, np.ndarray]:
    X, comp = make_blobs(1200, 32, centers=6, random_state=3)
    X = X.astype(np.float32)
    comp[:singletons] = 100 + np.arange(singletons)  # the "all other components" group
    pts = np.flatnonzero(comp < 6)
    bound = _projection_bounds(X, pts, comp)
    d = cdist(X[pts].astype(np.float64), X.astype(np.float64))
    d[comp[pts][:, None] == comp[None, :]] = np.inf
    return bound, d.min(1)


@pytest.mark.parametrize("singletons", [0, 40])
def test_projection_bound_is_below_every_distance_to_other_components(singletons: int) -> None:
    bound, nearest_outside = _bounds_and_truth(singletons)
    assert (bound <= nearest_outside).all()


def test_projection_bound_is_tight_enough_to_prune_separated_blobs() -> None:
    bound, nearest_outside = _bounds_and_truth(0)
    lightest = nearest_outside.min()  # no component's lightest edge is lighter than this
    assert (bound > lightest).mean() > 0.5
