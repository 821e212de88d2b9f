"""A class-balanced decision tree, grown from columns sorted once: the rule learner's CART.

The rule learner fits one shallow tree per risky cluster, each cluster's members against the
same sample of other traffic (`ops.risk._rule_learner`): at 1M transactions, 337 fits of
~100k rows, ~0.17 s each in scikit-learn's ``DecisionTreeClassifier``, most of the time
spent sorting the same sample's columns again at every node of every tree. Here each column of
the sample is sorted once (`SortedRows`), a tree's members are sorted apart (a few thousand
rows), and the tree grows one level at a time: a merged pass over each column's two sorted
runs evaluates every node of the level at once (the "presorted" CART of Breiman et al. 1984,
as in SLIQ, Mehta et al. 1996). A 0/1 column (a flag, a one-hot category) has one split, so it
needs no order: a count per node.

The splits are scikit-learn's ``DecisionTreeClassifier(class_weight="balanced")``'s with the
Gini criterion, ``splitter="best"`` and every feature: the same candidate thresholds (midpoints
of float32 values more than ``1e-7`` apart), the same ``min_samples_leaf`` and leaf rules, the
same proxy of the impurity decrease. Only ties go another way. Of splits with the same class
counts on each side (common: two session statistics that set a bot ring apart from the same
rows), scikit-learn keeps the first in a random order of the features, so a rule's wording
depended on the seed; this tree keeps the split with the widest gap between the values either
side of its cut, in units of the column's standard deviation over the tree's rows: the cut that
moves the fewest unseen rows, and the trait that sets the members furthest apart (a bot's
regular page timing rather than its page dwell, which a faster ring shares). Equal gaps keep
the lowest column. `tests/ops/risk/test_balanced_tree.py` checks it against scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

__all__ = ["SortedRows", "SplitTree", "fit_balanced_tree"]

#: scikit-learn's ``FEATURE_THRESHOLD``: float32 values closer than this are one value.
_SAME_VALUE = np.float32(1e-7)
#: scikit-learn's ``EPSILON``: a node this pure is a leaf.
_PURE = np.finfo(np.float64).eps


class SortedRows:
    """Tree input rows with each numeric column's order computed once.

    Parameters
    ----------
    matrix : ndarray (n, n_features), float32
        The rows.
    binary : ndarray (n_features,), bool
        Columns holding only 0 and 1: they have one split, so they are counted, never sorted.
    """

    def __init__(self, matrix: np.ndarray, binary: np.ndarray) -> None:
        matrix = np.asarray(matrix, dtype=np.float32)
        binary = np.asarray(binary, dtype=bool)
        #: per column, its index among the numeric columns, or -1 - its index among the 0/1
        self.slot = np.where(binary, -1 - np.cumsum(binary) + 1, np.cumsum(~binary) - 1)
        #: numeric columns, column-major (for routing rows), and each one's order and values
        self.numeric = np.asfortranarray(matrix[:, ~binary])
        self.order = np.argsort(self.numeric.T, axis=1).astype(np.int32)
        self.values = np.take_along_axis(self.numeric.T, self.order, axis=1)
        #: 0/1 columns, row-major bytes: a row's flags are added to its node's counts at once
        self.bits = np.ascontiguousarray(matrix[:, binary], dtype=np.uint8)
        #: each column's mean and sum of squared deviations, for the spread of two row sets
        self.mean = matrix.mean(axis=0, dtype=np.float64) if len(matrix) else np.zeros(len(binary))
        self.squares = ((matrix - self.mean) ** 2).sum(axis=0, dtype=np.float64)

    def __len__(self) -> int:
        return self.bits.shape[0]


@dataclass(frozen=True)
class SplitTree:
    """A fitted tree, in the arrays of scikit-learn's ``tree_`` (nodes in breadth-first order).

    ``feature`` and ``threshold`` are -2 at leaves, ``children_left`` and ``children_right``
    -1; ``value[node]`` is the node's class-weighted count of (other rows, members); a row goes
    left when its value is at most the threshold.
    """

    children_left: np.ndarray
    children_right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    value: np.ndarray


def fit_balanced_tree(
    others: SortedRows, members: SortedRows, max_depth: int, min_samples_leaf: int
) -> SplitTree:
    """Grow a class-balanced Gini tree telling ``members`` apart from ``others``.

    Parameters
    ----------
    others, members : SortedRows
        The two classes' rows, with the same columns (and the same 0/1 columns); each must
        hold at least one row.
    max_depth : int
        Depth of the deepest split (the root's children are at depth 1).
    min_samples_leaf : int
        Rows each side of a split needs, counted unweighted.

    Returns
    -------
    SplitTree
        What ``DecisionTreeClassifier(max_depth=max_depth, class_weight="balanced",
        min_samples_leaf=min_samples_leaf)`` fits on the rows labelled member or not, up to
        ties between features.
    """
    if len(others) == 0 or len(members) == 0:
        raise ValueError("both classes need rows")
    if not np.array_equal(others.slot, members.slot):
        raise ValueError("others and members must have the same 0/1 columns")
    arrays = _grow(
        (others.numeric, others.order, others.values, others.bits),
        (members.numeric, members.order, members.values, members.bits),
        others.slot,
        _spread(others, members),
        max_depth,
        max(1, min_samples_leaf),
    )
    return SplitTree(*arrays)


def _spread(a: SortedRows, b: SortedRows) -> np.ndarray:
    """Each column's standard deviation over both row sets (1 where it is constant)."""
    n_a, n_b = len(a), len(b)
    delta = b.mean - a.mean
    squares = a.squares + b.squares + delta * delta * (n_a * n_b / (n_a + n_b))
    spread = np.sqrt(squares / (n_a + n_b))
    return np.where(spread > 0, spread, 1.0)


@numba.njit(cache=True, nogil=True, inline="always")
def _proxy(l0: int, l1: int, n0: int, n1: int, w0: float, w1: float) -> float:
    """scikit-learn's ``proxy_impurity_improvement`` for Gini: larger is a better split.

    ``l0``, ``l1``: each class's rows on the left; ``n0``, ``n1``: in the node.
    """
    wl0, wl1 = l0 * w0, l1 * w1
    wr0, wr1 = (n0 - l0) * w0, (n1 - l1) * w1
    wl, wr = wl0 + wl1, wr0 + wr1
    gini_left = 1.0 - (wl0 * wl0 + wl1 * wl1) / (wl * wl)
    gini_right = 1.0 - (wr0 * wr0 + wr1 * wr1) / (wr * wr)
    return -wr * gini_right - wl * gini_left


@numba.njit(cache=True, nogil=True, inline="always")
def _better(proxy: float, gap: float, best: float, best_gap: float) -> bool:
    """A larger decrease of impurity; of equal ones, the wider gap (in the column's spread)."""
    return proxy > best or (proxy == best and gap > best_gap)


@numba.njit(cache=True, nogil=True)
def _splittable(
    n0: int, n1: int, w0: float, w1: float, depth: int, max_depth: int, leaf: int
) -> bool:
    """scikit-learn's test of a node before its split search (``min_samples_split`` = 2 leaves)."""
    if depth >= max_depth or n0 + n1 < max(2, 2 * leaf):
        return False
    a, b = n0 * w0, n1 * w1
    return 1.0 - (a * a + b * b) / ((a + b) * (a + b)) > _PURE


@numba.njit(cache=True, nogil=True)
def _value(rows: tuple, r: int, s: int) -> float:
    """Column ``slot`` ``s``'s value in row ``r`` of one class's `SortedRows` arrays."""
    return rows[0][r, s] if s >= 0 else rows[3][r, -1 - s]


@numba.njit(cache=True, nogil=True)
def _grow(
    others: tuple,
    members: tuple,
    slot: np.ndarray,
    spread: np.ndarray,
    max_depth: int,
    leaf: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Grow level by level. Rows are numbered the others first, then the members.

    ``others`` and ``members``: each class's (numeric, order, values, bits) of `SortedRows`;
    ``spread``: each column's unit for the gap that breaks ties between equal splits.
    """
    n_others, n_members = others[3].shape[0], members[3].shape[0]
    n, n_features, n_bits = n_others + n_members, slot.shape[0], others[3].shape[1]
    capacity = 2 ** (max_depth + 1) - 1
    left_child = np.full(capacity, -1, np.int64)
    right_child = np.full(capacity, -1, np.int64)
    feature = np.full(capacity, -2, np.int64)
    threshold = np.full(capacity, -2.0)
    count = np.zeros((capacity, 2), np.int64)
    count[0, 0], count[0, 1] = n_others, n_members
    is_open = np.zeros(capacity, np.bool_)
    w0, w1 = n / (2.0 * n_others), n / (2.0 * n_members)  # "balanced"
    is_open[0] = _splittable(n_others, n_members, w0, w1, 0, max_depth, leaf)
    node_of = np.full(n, 0 if is_open[0] else -1, np.int32)  # -1: a leaf's row
    n_nodes, first = 1, 0
    best = np.empty(capacity)
    best_gap = np.empty(capacity)
    left = np.zeros((capacity, 2), np.int64)
    ones = np.zeros((capacity, 2, n_bits), np.int64)
    previous = np.zeros(capacity, np.float32)
    for depth in range(max_depth):
        last = n_nodes
        best[:] = -np.inf
        best_gap[:] = -np.inf
        # each 0/1 column's ones per node and class, one pass over the rows for all of them
        ones[first:last] = 0
        for r in range(n):
            k = node_of[r]
            if k >= 0:
                c = 0 if r < n_others else 1
                bits = others[3][r] if c == 0 else members[3][r - n_others]
                for b in range(n_bits):
                    ones[k, c, b] += bits[b]
        for f in range(n_features):
            s = slot[f]
            if s < 0:  # 0/1: the one split puts the zeros left, at 0.5
                for k in range(first, last):
                    l0, l1 = count[k, 0] - ones[k, 0, -1 - s], count[k, 1] - ones[k, 1, -1 - s]
                    n_right = count[k, 0] + count[k, 1] - l0 - l1
                    if is_open[k] and l0 + l1 >= leaf and n_right >= leaf:
                        proxy = _proxy(l0, l1, count[k, 0], count[k, 1], w0, w1)
                        gap = 1.0 / spread[f]
                        if _better(proxy, gap, best[k], best_gap[k]):
                            best[k], best_gap[k], feature[k], threshold[k] = proxy, gap, f, 0.5
                continue
            # numeric: the two classes' sorted runs merged, every node of the level at once
            left[first:last] = 0
            i = j = 0
            while i < n_others or j < n_members:
                if j == n_members or (i < n_others and others[2][s, i] <= members[2][s, j]):
                    r, v, c = others[1][s, i], others[2][s, i], 0
                    i += 1
                else:
                    r, v, c = n_others + members[1][s, j], members[2][s, j], 1
                    j += 1
                k = node_of[r]
                if k < 0:
                    continue
                l0, l1 = left[k, 0], left[k, 1]
                n_right = count[k, 0] + count[k, 1] - l0 - l1
                if l0 + l1 >= leaf and n_right >= leaf and v > previous[k] + _SAME_VALUE:
                    proxy = _proxy(l0, l1, count[k, 0], count[k, 1], w0, w1)
                    gap = (np.float64(v) - previous[k]) / spread[f]
                    if _better(proxy, gap, best[k], best_gap[k]):
                        # halves, as scikit-learn: no overflow; the lower value if they round up
                        t = np.float64(previous[k]) / 2.0 + np.float64(v) / 2.0
                        best[k], best_gap[k], feature[k] = proxy, gap, f
                        threshold[k] = previous[k] if t == v or np.isinf(t) else t
                left[k, c] += 1
                previous[k] = v
        # split every open node that found a split; route its rows to the children
        for k in range(first, last):  # a node without a split kept feature -2, a leaf's
            if is_open[k] and np.isfinite(best[k]):
                left_child[k], right_child[k] = n_nodes, n_nodes + 1
                n_nodes += 2
        for r in range(n):
            k = node_of[r]
            if k >= 0 and left_child[k] >= 0:
                c = 0 if r < n_others else 1
                s = slot[feature[k]]
                x = _value(others, r, s) if c == 0 else _value(members, r - n_others, s)
                child = left_child[k] if x <= threshold[k] else right_child[k]
                count[child, c] += 1
                node_of[r] = child
            else:
                node_of[r] = -1
        for k in range(last, n_nodes):
            is_open[k] = _splittable(count[k, 0], count[k, 1], w0, w1, depth + 1, max_depth, leaf)
        for r in range(n):
            if node_of[r] >= 0 and not is_open[node_of[r]]:
                node_of[r] = -1
        first = last
        if first == n_nodes:
            break
    value = count[:n_nodes] * np.array([w0, w1])
    return (
        left_child[:n_nodes],
        right_child[:n_nodes],
        feature[:n_nodes],
        threshold[:n_nodes],
        value,
    )
