"""Equal-weight merges: labels that do not depend on tie order, within hdbscan's own spread."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hdbscan._hdbscan_tree import compute_stability, condense_tree, get_clusters
from sklearn.cluster import HDBSCAN as SkHDBSCAN
from sklearn.datasets import load_digits, make_blobs
from sklearn.metrics import adjusted_rand_score

from ops.phdbscan import PHDBSCAN
from ops.phdbscan._condensed_tree import single_linkage
from ops.phdbscan._level_tree import condense_mst
from tests.ops.phdbscan.references import mismatch

hdbscan = pytest.importorskip("hdbscan")

ALGORITHMS = ("generic", "prims_kdtree", "prims_balltree", "boruvka_kdtree", "boruvka_balltree")


def _aniso() -> np.ndarray:
    X, _ = make_blobs(1200, 2, centers=4, random_state=2)
    return X @ np.array([[0.6, -0.6], [-0.4, 0.8]])


def _duplicates() -> np.ndarray:
    X, _ = make_blobs(700, 4, centers=5, cluster_std=[0.3, 0.6, 1.0, 1.5, 2.0], random_state=1)
    return np.vstack([X, X[:300]])


CASES = {
    "digits-mcs25-ms5": (load_digits().data, {"min_cluster_size": 25, "min_samples": 5}),
    "digits-mcs15-ms5": (load_digits().data, {"min_cluster_size": 15, "min_samples": 5}),
    "aniso-mcs5": (_aniso(), {"min_cluster_size": 5}),
    "aniso-leaf10": (_aniso(), {"min_cluster_size": 10, "cluster_selection_method": "leaf"}),
    "duplicates-mcs15-ms5": (_duplicates(), {"min_cluster_size": 15, "min_samples": 5}),
}


def _labels(condensed: np.ndarray, method: str = "eom") -> np.ndarray:
    stability = compute_stability(condensed)
    return get_clusters(condensed, stability, method, False, False, 0.0, 0, float("inf"))[0]


def _references(X: np.ndarray, params: dict) -> tuple[np.ndarray, list[np.ndarray]]:
    """hdbscan's default exact labels, and those of every exact algorithm and scikit-learn's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        default = hdbscan.HDBSCAN(approx_min_span_tree=False, **params).fit(X).labels_
        others = [
            hdbscan.HDBSCAN(approx_min_span_tree=False, algorithm=a, **params).fit(X).labels_
            for a in ALGORITHMS
        ]
    sk_params = dict(params)  # scikit-learn counts the point itself (hdbscan.md point 2)
    sk_params["min_samples"] = params.get("min_samples", params["min_cluster_size"]) + 1
    others.append(SkHDBSCAN(copy=True, **sk_params).fit(X).labels_)
    return default, others


@pytest.mark.parametrize("case", list(CASES))
def test_labels_do_not_depend_on_the_order_of_tied_edges(case: str) -> None:
    X, params = CASES[case]
    model = PHDBSCAN(mode="exact", **params).fit(X)
    mst = model.minimum_spanning_tree_.to_numpy()
    rng = np.random.default_rng(0)
    shuffled = mst[rng.permutation(len(mst))]
    flip = rng.random(len(mst)) < 0.5
    shuffled[flip, :2] = shuffled[flip, 1::-1]
    a = condense_mst(mst, params["min_cluster_size"])
    b = condense_mst(shuffled, params["min_cluster_size"])
    np.testing.assert_array_equal(a, b)
    method = params.get("cluster_selection_method", "eom")
    np.testing.assert_array_equal(_labels(a, method), model.labels_)


@pytest.mark.parametrize("case", list(CASES))
def test_ties_agree_with_hdbscan_as_well_as_its_own_algorithms_do(case: str) -> None:
    X, params = CASES[case]
    default, others = _references(X, params)
    ours = PHDBSCAN(mode="exact", **params).fit(X).labels_
    spread = max(mismatch(o, default) for o in others)
    floor = min(adjusted_rand_score(default, o) for o in others)
    if spread == 0:  # every reference gives the same labels: so must we
        assert adjusted_rand_score(default, ours) == 1.0
    else:  # at most one point in 200 beyond the references' own spread
        assert mismatch(ours, default) <= spread + 0.005, (mismatch(ours, default), spread)
        assert adjusted_rand_score(default, ours) >= floor - 0.01


def test_condensing_without_ties_equals_hdbscans() -> None:
    rng = np.random.default_rng(3)
    n = 400
    # a random spanning tree with distinct weights: hdbscan's binary tree has only one shape
    parents = np.array([rng.integers(0, i) for i in range(1, n)])
    mst = np.column_stack([parents, np.arange(1, n), rng.permutation(n - 1) + 1.0])
    ours = condense_mst(mst, 8)
    ref = condense_tree(single_linkage(mst), 8)
    assert adjusted_rand_score(_labels(ref), _labels(ours)) == 1.0
    assert sorted(ours["lambda_val"].tolist()) == sorted(ref["lambda_val"].tolist())
    assert sorted(ours["child_size"].tolist()) == sorted(ref["child_size"].tolist())
