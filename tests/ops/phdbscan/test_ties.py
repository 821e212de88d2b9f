"""Equal-weight merges: hdbscan's Prim's tree, its sort, and so its labels."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hdbscan._hdbscan_tree import condense_tree as hdbscan_condense_tree
from sklearn.datasets import load_digits, load_wine
from sklearn.metrics import adjusted_rand_score

from ops.phdbscan import PHDBSCAN
from ops.phdbscan._condense import condense_tree
from ops.phdbscan._condensed_tree import single_linkage
from ops.phdbscan._prims_order import hdbscan_order, prims_emission
from tests.ops.phdbscan.references import (
    all_tied_edges,
    aniso,
    default_labels,
    duplicated_rows,
    prims_labels,
    prims_sorted,
    prims_tree,
    spread_floor,
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


@pytest.mark.parametrize("case", list(CASES))
def test_tree_and_labels_are_hdbscans_prims(case: str) -> None:
    # Same rows in the same order as hdbscan's Prim's after its own (unstable) sort, so the
    # same binary tree and labels, on whatever NumPy sorting kernel this machine has.
    X, params = CASES[case]
    model = PHDBSCAN(mode="exact", **params).fit(X)
    np.testing.assert_array_equal(model.minimum_spanning_tree_.to_numpy(), prims_sorted(X, params))
    np.testing.assert_array_equal(model.labels_, prims_labels(X, params))


@pytest.mark.parametrize("case", list(CASES))
def test_agrees_with_hdbscans_default_as_well_as_its_own_algorithms(case: str) -> None:
    # The floor is the spread of all of hdbscan's exact algorithms and scikit-learn's against
    # hdbscan's default, whichever algorithm a release of hdbscan makes its default.
    X, params = CASES[case]
    ours = PHDBSCAN(mode="exact", **params).fit(X).labels_
    floor = spread_floor(X, params)
    assert adjusted_rand_score(default_labels(X, params), ours) >= floor
    if floor == 1.0:  # where they all agree, so do we
        assert adjusted_rand_score(default_labels(X, params), ours) == 1.0


@pytest.mark.parametrize("case", ["digits-mcs5", "aniso-leaf10", "duplicates-mcs5"])
def test_emission_does_not_depend_on_the_tree_its_row_order_or_the_walks(case: str) -> None:
    X, params = CASES[case]
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
    tied = all_tied_edges(X, params, ours[:, 2])
    trees = [ours, shuffled, prims_tree(X, params), boruvka._min_spanning_tree]
    emitted = [prims_emission(tree, tied) for tree in trees]
    # the walk over the points renumbered, as by cells: ties still go to the least index
    emitted.append(prims_emission(shuffled, tied, order=rng.permutation(len(X))))
    for other in emitted:  # every minimum spanning tree, given every tied edge
        np.testing.assert_array_equal(other, prims_tree(X, params))
    np.testing.assert_array_equal(hdbscan_order(shuffled, tied), prims_sorted(X, params))


@pytest.mark.parametrize("min_cluster_size", [2, 5, 30])
@pytest.mark.parametrize("seed", [0, 1])
def test_condense_tree_equals_hdbscans(min_cluster_size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 600
    # a random spanning tree with many equal weights and some zero ones
    parents = np.array([rng.integers(0, i) for i in range(1, n)])
    weights = rng.integers(0, 12, n - 1).astype(np.float64)
    hierarchy = single_linkage(np.column_stack([parents, np.arange(1, n), weights]))
    ours = condense_tree(hierarchy, min_cluster_size)
    ref = hdbscan_condense_tree(hierarchy, min_cluster_size)
    assert ours.dtype.names == ref.dtype.names
    for name in ref.dtype.names:
        np.testing.assert_array_equal(ours[name], ref[name])


def test_a_single_point_tree_condenses_to_nothing() -> None:
    assert condense_tree(np.zeros((0, 4)), 5).shape == (0,)
