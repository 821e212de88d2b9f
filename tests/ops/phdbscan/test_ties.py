"""Equal-weight merges: labels that do not depend on tie order, and are hdbscan's Prim's."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hdbscan._hdbscan_tree import compute_stability, condense_tree, get_clusters
from sklearn.datasets import load_digits, load_wine
from sklearn.metrics import adjusted_rand_score

from ops.phdbscan import PHDBSCAN
from ops.phdbscan._condensed_tree import single_linkage
from ops.phdbscan._level_tree import condense_mst
from tests.ops.phdbscan.references import (
    all_tied_edges,
    aniso,
    duplicated_rows,
    prims_in_order,
    prims_tree,
)

hdbscan = pytest.importorskip("hdbscan")


LEAF10 = {"min_cluster_size": 10, "cluster_selection_method": "leaf"}
CASES = {
    "digits-mcs25-ms5": (load_digits().data, {"min_cluster_size": 25, "min_samples": 5}),
    "digits-mcs5": (load_digits().data, {"min_cluster_size": 5}),
    "digits-mcs15-ms5": (load_digits().data, {"min_cluster_size": 15, "min_samples": 5}),
    "aniso-mcs5": (aniso(), {"min_cluster_size": 5}),
    "aniso-leaf10": (aniso(), LEAF10),
    "duplicates-mcs5": (duplicated_rows(), {"min_cluster_size": 5}),
    "duplicates-mcs15-ms5": (duplicated_rows(), {"min_cluster_size": 15, "min_samples": 5}),
    "duplicates-leaf10": (duplicated_rows(), LEAF10),
    "wine-mcs15-ms5": (load_wine().data, {"min_cluster_size": 15, "min_samples": 5}),
}


def _labels(condensed: np.ndarray, method: str = "eom") -> np.ndarray:
    stability = compute_stability(condensed)
    return get_clusters(condensed, stability, method, False, False, 0.0, 0, float("inf"))[0]


@pytest.mark.parametrize("case", list(CASES))
def test_labels_are_hdbscans_prims_with_tied_edges_in_prims_order(case: str) -> None:
    # hdbscan's Prim's algorithms (its default above 60 dimensions) and scikit-learn's emit
    # tied edges in this order; their unstable argsort then reorders them in a way that
    # depends on NumPy's sorting kernel (docs/phdbscan.md), which this reference does not.
    X, params = CASES[case]
    ours = PHDBSCAN(mode="exact", **params).fit(X).labels_
    assert adjusted_rand_score(prims_in_order(X, params), ours) == 1.0


@pytest.mark.parametrize("case", list(CASES))
def test_labels_do_not_depend_on_the_tree_or_its_row_order(case: str) -> None:
    X, params = CASES[case]
    mcs = params["min_cluster_size"]
    method = params.get("cluster_selection_method", "eom")
    model = PHDBSCAN(mode="exact", **params).fit(X)
    ours = model.minimum_spanning_tree_.to_numpy()
    rng = np.random.default_rng(0)
    shuffled = ours[rng.permutation(len(ours))]
    flip = rng.random(len(ours)) < 0.5
    shuffled[flip, :2] = shuffled[flip, 1::-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        boruvka = hdbscan.HDBSCAN(
            approx_min_span_tree=False, algorithm="boruvka_kdtree", gen_min_span_tree=True, **params
        ).fit(X)
    trees = [ours, shuffled, prims_tree(X, params), boruvka._min_spanning_tree]
    tied = all_tied_edges(X, params, ours[:, 2])
    condensed = [condense_mst(tree, mcs, tied) for tree in trees]
    for other in condensed[1:]:  # same minimum spanning trees up to their tied edges
        np.testing.assert_array_equal(condensed[0], other)
    np.testing.assert_array_equal(_labels(condensed[0], method), model.labels_)


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
