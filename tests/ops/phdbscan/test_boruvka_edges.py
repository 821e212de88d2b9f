"""Borůvka's edge loops give what the numpy formulas they replaced gave, ties included."""

from __future__ import annotations

import numpy as np

from ops.phdbscan._boruvka_edges import (
    lightest_leaving,
    mutual_reachability_lists,
    per_component_best,
)

RNG = np.random.default_rng(7)
N, K = 20_000, 6  # above one row block, so the threaded blocks meet
# integer distances and cores: many equal weights, so the tie rule shows
KNN_IDX = RNG.integers(-1, N, (N, K))
KNN_DIST = np.sort(RNG.integers(0, 5, (N, K)).astype(np.float64), axis=1)
CORE = RNG.integers(0, 4, N).astype(np.float64)
COMP = RNG.integers(0, 50, N)
KNN_IDX[:100] = -1  # rows with no list, and rows listing only their own component
KNN_IDX[100:200] = np.arange(100, 200)[:, None]


def test_mutual_reachability_lists() -> None:
    safe = np.where(KNN_IDX >= 0, KNN_IDX, 0)
    expected = np.maximum(np.maximum(CORE[:, None], CORE[safe]), KNN_DIST)
    expected[KNN_IDX < 0] = np.inf
    np.testing.assert_array_equal(mutual_reachability_lists(KNN_DIST, KNN_IDX, CORE), expected)


def test_lightest_leaving_takes_the_first_of_equal_weights() -> None:
    W = mutual_reachability_lists(KNN_DIST, KNN_IDX, CORE)
    safe = np.where(KNN_IDX >= 0, KNN_IDX, 0)
    Wm = np.where(COMP[safe] == COMP[:, None], np.inf, W)
    j = Wm.argmin(1)
    rows = np.arange(N)
    best_w, best_q = lightest_leaving(W, KNN_IDX, COMP)
    np.testing.assert_array_equal(best_w, Wm[rows, j])
    np.testing.assert_array_equal(best_q, np.where(np.isfinite(Wm[rows, j]), KNN_IDX[rows, j], -1))
    assert np.isinf(best_w).any() and np.isfinite(best_w).any()


def test_per_component_best_is_the_stable_lexsort_choice() -> None:
    u = np.arange(N)
    v = np.where(RNG.random(N) < 0.1, -1, RNG.integers(0, N, N))
    w = RNG.integers(0, 3, N).astype(np.float64)
    ok = v >= 0
    keys = np.concatenate([COMP[u[ok]], COMP[v[ok]]])
    ww = np.concatenate([w[ok], w[ok]])
    uu, vv = np.concatenate([u[ok], v[ok]]), np.concatenate([v[ok], u[ok]])
    order = np.lexsort((ww, keys))
    first = np.r_[True, keys[order][1:] != keys[order][:-1]]
    c = keys[order][first]
    bw, bu, bv = per_component_best(COMP, 60, w, u, v)  # components 50..59 have no edge
    np.testing.assert_array_equal(bw[c], ww[order][first])
    np.testing.assert_array_equal(bu[c], uu[order][first])
    np.testing.assert_array_equal(bv[c], vv[order][first])
    assert (bu[50:] == -1).all() and np.isinf(bw[50:]).all()
