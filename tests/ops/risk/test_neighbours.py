"""Neighbour vote: a ring's stragglers are flagged through their flagged neighbours."""

from __future__ import annotations

import numpy as np
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial.distance import pdist, squareform

from ops.phdbscan import PHDBSCAN, training_neighbours
from ops.risk import NeighbourConfig, flag_transactions, neighbour_vote


def _world(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A tight ring (120 points: 80 flagged, 40 stragglers among them) and 600 clean points."""
    rng = np.random.default_rng(seed)
    clean = rng.normal(0.0, 1.0, size=(600, 4))
    ring = rng.normal(6.0, 0.3, size=(120, 4))
    X = np.vstack([ring, clean])
    fraud = np.r_[np.ones(120), np.zeros(600)]
    flagged = np.zeros(len(X), dtype=bool)
    flagged[:80] = True
    return X, fraud, flagged


def _search(X: np.ndarray):
    d = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    order = np.argsort(d, axis=1)
    return lambda rows, k: order[rows, :k]


def _edges(X: np.ndarray) -> np.ndarray:
    """The minimum spanning tree's edges, ``(a, b, weight)`` as the clusterer gives them."""
    tree = minimum_spanning_tree(squareform(pdist(X))).tocoo()
    return np.c_[tree.row, tree.col, tree.data]


def test_the_vote_flags_a_rings_stragglers_and_no_clean_point() -> None:
    X, fraud, flagged = _world()
    label = fraud.copy()
    label[::3] = np.nan  # a labelled part, not all
    vote = neighbour_vote(flagged, _edges(X), _search(X), label, NeighbourConfig(k=10))
    # most at once; the last few are left when fewer than 20 labelled remain to judge them
    assert vote.flagged[80:120].mean() >= 0.8
    assert not vote.flagged[120:].any()
    assert not vote.flagged[:80].any()  # only what the other reasons left
    first = vote.rounds[0]
    assert first.calibrated and np.isfinite(first.threshold)
    assert {"threshold", "n_labelled", "precision", "recall"} <= set(first.table.columns)
    doc = vote.to_dict()
    assert doc["n_flagged"] == vote.flagged.sum() and doc["table"] and doc["rounds"]


def test_without_labels_a_majority_of_flagged_neighbours_flags() -> None:
    X, _, flagged = _world(1)
    vote = neighbour_vote(
        flagged, _edges(X), _search(X), np.full(len(X), np.nan), NeighbourConfig(k=10)
    )
    assert all(not r.calibrated and r.threshold == 0.5 for r in vote.rounds)
    assert vote.flagged[80:120].all() and not vote.flagged[120:].any()


def test_labels_that_allow_no_precise_threshold_flag_nothing() -> None:
    X, _, flagged = _world(2)
    label = np.zeros(len(X))  # the stragglers are labelled legitimate: no threshold is precise
    vote = neighbour_vote(flagged, _edges(X), _search(X), label, NeighbourConfig(k=10))
    assert not vote.flagged.any()
    assert vote.rounds[0].calibrated and not np.isfinite(vote.rounds[0].threshold)


def test_neighbours_is_the_last_flag_reason() -> None:
    cluster = np.array([0, -1, -1])
    risky, reason = flag_transactions(
        cluster, {0}, rule_hits=np.array([False, True, False]), neighbours=np.array([1, 1, 1])
    )
    assert reason.tolist() == ["cluster", "rule", "neighbours"]
    assert risky.all()


def test_training_neighbours_are_the_nearest_other_points() -> None:
    X, _, _ = _world(3)
    model = PHDBSCAN(min_cluster_size=10).fit(X)
    rows = np.array([0, 5, 100, 719])
    got = training_neighbours(model, rows, 7)
    assert got.shape == (4, 7)
    assert not (got == rows[:, None]).any()
    expected = _search(X)(rows, 7)
    for g, e in zip(got, expected, strict=True):
        assert set(g) == set(e)


def test_too_few_labelled_stragglers_to_judge_fall_back_to_a_majority() -> None:
    X, fraud, flagged = _world(4)
    flagged[:110] = True  # ten stragglers left, too few for 20 labels at any threshold
    label = fraud.copy()
    label[110:120:2] = np.nan
    vote = neighbour_vote(flagged, _edges(X), _search(X), label, NeighbourConfig(k=10))
    assert vote.rounds[0].threshold == 0.5 and not vote.rounds[0].calibrated
    assert vote.flagged[110:120].all() and not vote.flagged[120:].any()
    # the same few labelled against it: the labels still judge, and nothing is flagged
    label[110:120] = 0.0
    vote = neighbour_vote(flagged, _edges(X), _search(X), label, NeighbourConfig(k=10))
    assert not vote.flagged.any()
