"""The rule learner's tree: scikit-learn's class-balanced Gini splits, from presorted columns."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.tree import DecisionTreeClassifier

from ops.risk._balanced_tree import SortedRows, SplitTree, _proxy, fit_balanced_tree


def _world(seed: int, continuous: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Others then members: numeric columns (shifted for members) and 0/1 columns."""
    rng = np.random.default_rng(seed)
    n_others, n_members, n_numeric, n_binary = 3000, 300, 4, 3
    x = rng.normal(size=(n_others + n_members, n_numeric + n_binary))
    x[n_others:, :2] += [1.0, -0.7]
    if not continuous:  # few distinct values: ties everywhere
        x = np.round(x * 2)
    x[:, n_numeric:] = rng.random((len(x), n_binary)) < 0.3
    x[n_others:, n_numeric] = rng.random(n_members) < 0.7
    binary = np.arange(x.shape[1]) >= n_numeric
    member = np.r_[np.zeros(n_others, bool), np.ones(n_members, bool)]
    return x.astype(np.float32), binary, member


def _fit(x: np.ndarray, binary: np.ndarray, member: np.ndarray, **kw: int) -> SplitTree:
    return fit_balanced_tree(SortedRows(x[~member], binary), SortedRows(x[member], binary), **kw)


def _shape(tree: object, node: int = 0) -> tuple:
    """A tree as nested (feature, threshold, left, right), leaves as their majority."""
    t = getattr(tree, "tree_", tree)
    if t.children_left[node] == -1:
        value = np.ravel(t.value[node])
        return ("member" if value[1] > value[0] else "other",)
    return (
        int(t.feature[node]),
        round(float(t.threshold[node]), 6),
        _shape(tree, t.children_left[node]),
        _shape(tree, t.children_right[node]),
    )


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("max_depth, leaf", [(1, 1), (2, 5), (3, 30)])
def test_the_tree_is_scikit_learns_where_no_splits_tie(
    seed: int, max_depth: int, leaf: int
) -> None:
    x, binary, member = _world(seed)
    ours = _fit(x, binary, member, max_depth=max_depth, min_samples_leaf=leaf)
    theirs = DecisionTreeClassifier(
        max_depth=max_depth, class_weight="balanced", min_samples_leaf=leaf, random_state=seed
    ).fit(x, member)
    assert _shape(ours) == _shape(theirs)
    # the same nodes with the same class-weighted sizes (numbered breadth-first here)
    weighed = np.sort(ours.value.sum(1))
    assert np.allclose(weighed, np.sort(theirs.tree_.weighted_n_node_samples))


def _rows_at(tree: SplitTree, x: np.ndarray) -> dict[int, np.ndarray]:
    """Each node's rows (by routing every row from the root)."""
    out = {0: np.arange(len(x))}
    for node in range(len(tree.feature)):
        if tree.children_left[node] >= 0:
            rows = out[node]
            go_left = x[rows, tree.feature[node]] <= tree.threshold[node]
            out[tree.children_left[node]] = rows[go_left]
            out[tree.children_right[node]] = rows[~go_left]
    return out


@pytest.mark.parametrize("seed", range(4))
def test_every_split_is_the_best_one_and_leaves_keep_their_minimum(seed: int) -> None:
    """Brute force over every candidate split of every node, on data full of ties."""
    x, binary, member = _world(seed, continuous=False)
    leaf, max_depth = 12, 3
    tree = _fit(x, binary, member, max_depth=max_depth, min_samples_leaf=leaf)
    n = len(member)
    weight = n / (2.0 * (~member).sum()), n / (2.0 * member.sum())
    rows_at = _rows_at(tree, x)
    depth = _depths(tree)
    assert len(tree.feature) > 3 and max(depth.values()) == max_depth
    for node, rows in rows_at.items():
        assert len(rows) >= leaf
        counts = np.bincount(member[rows], minlength=2)
        assert np.allclose(tree.value[node], counts * weight)
        candidates = []
        for f in range(x.shape[1]):
            for t in np.unique(x[rows, f])[:-1]:
                left = rows[x[rows, f] <= t]
                if leaf <= len(left) <= len(rows) - leaf:
                    lc = np.bincount(member[left], minlength=2)
                    candidates.append(_proxy(lc[0], lc[1], counts[0], counts[1], *weight))
        if tree.children_left[node] == -1:  # a leaf only where it must be
            assert counts.min() == 0 or not candidates or depth[node] == max_depth
            continue
        lc = np.bincount(member[rows_at[tree.children_left[node]]], minlength=2)
        chosen = _proxy(lc[0], lc[1], counts[0], counts[1], *weight)
        assert chosen >= max(candidates) - 1e-9 * abs(max(candidates))


def _depths(tree: SplitTree) -> dict[int, int]:
    """Each node's depth, the root's 0."""
    depth = {0: 0}
    for node in range(len(tree.feature)):
        for child in (tree.children_left[node], tree.children_right[node]):
            if child >= 0:
                depth[int(child)] = depth[node] + 1
    return depth


def test_of_equal_splits_the_first_column_wins() -> None:
    x, binary, member = _world(0)
    x[member, 0] += 3.0  # column 0 is the best split
    twin = np.c_[x[:, :1], x]  # column 1 repeats column 0
    tree = _fit(twin, np.r_[False, binary], member, max_depth=1, min_samples_leaf=1)
    assert tree.feature[0] == 0
    alone = _fit(x, binary, member, max_depth=1, min_samples_leaf=1)
    assert alone.feature[0] == 0 and alone.threshold[0] == tree.threshold[0]


def test_of_splits_with_the_same_counts_the_widest_gap_wins() -> None:
    """Both columns set the members apart; the second leaves the wider gap (in its spread)."""
    rng = np.random.default_rng(3)
    others = rng.random((500, 2))
    members = np.c_[1.05 + rng.random(40) * 0.1, 3.0 + rng.random(40) * 0.1]
    x = np.r_[others, members].astype(np.float32)
    member = np.r_[np.zeros(500, bool), np.ones(40, bool)]
    tree = _fit(x, np.zeros(2, bool), member, max_depth=1, min_samples_leaf=1)
    assert tree.feature[0] == 1 and 1.0 < tree.threshold[0] < 3.0


def test_a_pure_or_small_root_is_a_leaf_and_empty_classes_are_refused() -> None:
    x, binary, member = _world(1)
    tree = _fit(x, binary, member, max_depth=3, min_samples_leaf=len(x))
    assert len(tree.feature) == 1 and tree.feature[0] == -2
    with pytest.raises(ValueError, match="both classes"):
        fit_balanced_tree(SortedRows(x[:0], binary), SortedRows(x, binary), 2, 1)
