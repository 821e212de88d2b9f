"""The exact MST's pruning bound must never exceed a true distance, and must prune blobs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.datasets import make_blobs

from ops.phdbscan._mst import _complement_search
from ops.phdbscan._projection_bound import projection_bounds, projection_groups

X, BLOB = make_blobs(1200, 32, centers=6, random_state=3)
X = X.astype(np.float32)


def _nearest_outside(pts: np.ndarray, comp: np.ndarray) -> np.ndarray:
    d = cdist(X[pts].astype(np.float64), X.astype(np.float64))
    d[comp[pts][:, None] == comp[None, :]] = np.inf
    return d.min(1)


def _scenario(name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(comp, groups)`` as the Borůvka loop can meet them."""
    comp = BLOB.copy()
    if name == "components":
        return comp, projection_groups(comp, np.arange(len(comp)), 64)
    if name == "singletons lumped":
        comp[:40] = 100 + np.arange(40)
        return comp, projection_groups(comp, np.flatnonzero(comp < 6), 10)
    if name == "blobs merged since":
        comp[comp == 1] = 0
        return comp, BLOB.copy()
    if name == "group spans components":
        groups = BLOB.copy()
        groups[groups == 3] = 2
        return comp, groups
    raise ValueError(name)


@pytest.mark.parametrize(
    "scenario",
    ["components", "singletons lumped", "blobs merged since", "group spans components"],
)
def test_projection_bound_is_below_every_distance_to_other_components(scenario: str) -> None:
    comp, groups = _scenario(scenario)
    pts = np.flatnonzero(comp < 6)
    bound = projection_bounds(X, pts, comp, groups)
    assert (bound <= _nearest_outside(pts, comp)).all()


def test_projection_bound_is_tight_enough_to_prune_separated_blobs() -> None:
    comp, groups = _scenario("components")
    pts = np.arange(len(comp))
    bound = projection_bounds(X, pts, comp, groups)
    lightest = _nearest_outside(pts, comp).min()  # no component's lightest edge is lighter
    assert (bound > lightest).mean() > 0.5


@pytest.mark.parametrize("scenario", ["components", "blobs merged since"])
def test_complement_lists_are_the_nearest_points_outside(scenario: str) -> None:
    comp, _ = _scenario(scenario)
    pts = np.random.default_rng(0).choice(len(X), 300, replace=False)
    core = np.zeros(len(X))
    k = 8
    idx, mr, radius = _complement_search(X, pts, comp, core, k)
    d = cdist(X[pts].astype(np.float64), X.astype(np.float64))
    d[comp[pts][:, None] == comp[None, :]] = np.inf
    nearest = np.sort(d, axis=1)[:, :k]
    np.testing.assert_allclose(mr, nearest, rtol=1e-12)
    assert (comp[idx] != comp[pts][:, None]).all()
    np.testing.assert_allclose(np.take_along_axis(d, idx, 1), mr, rtol=1e-12)
    # nothing unlisted outside the component lies within the radius
    d[np.arange(len(pts))[:, None], idx] = np.inf
    assert (radius <= d.min(1)).all()
