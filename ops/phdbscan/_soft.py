"""Soft clustering: hdbscan's prediction data, exemplars and membership vectors, vectorised.

The formulas are hdbscan's (``hdbscan.prediction`` and ``_prediction_utils``, 0.8.4x;
Campello et al. 2015 for the outlier part): a point's membership in each selected cluster
mixes a *distance* part (inverse distance to the cluster's exemplars, the points that stay
longest in its leaves) with an *outlier* part (how high in the condensed tree the point's
cluster merges with that cluster), scaled by the probability that the point is in some
cluster at all. hdbscan evaluates them point by point, walking the tree in Python/Cython for
every (point, cluster) pair; here the walks are done once per (tree cluster, selected
cluster) pair and the points gather from that table, and exemplar distances are matrix
products, so 100k points cost seconds.

:class:`PredictionData` carries hdbscan's attribute names (``raw_data``, ``tree``,
``core_distances``, ``cluster_map``, ``max_lambdas``, ``leaf_max_lambdas``, ``exemplars``,
``cluster_tree``, ``dist_metric``), so ``hdbscan.prediction``'s own functions also accept a
fitted ``PHDBSCAN``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numba
import numpy as np

__all__ = ["PredictionData", "all_points_vectors", "membership_vectors"]

_BLOCK_FLOATS = 1 << 23  # float64s of one block of exemplar distances (64 MiB)
# float64s of each rows x clusters array of a block of membership vectors (8 MiB): a few
# such arrays at a time, small enough that freed ones are reused, not faulted in anew
# (the block sizes tried: benchmarks/README.md)
_VECTOR_FLOATS = 1 << 20
# Squared distances under this share of |x|^2 + |e|^2 are within the product form's
# rounding of zero, and are recomputed as sums of squares.
_ROUNDING = 1e-9


@numba.njit(cache=True)
def _merge_heights(
    cluster_parent: np.ndarray, cluster_birth: np.ndarray, selected: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Compute hdbscan's ``merge_height`` for every (tree cluster, selected cluster) pair.

    Returns ``height[a, j]``, the lambda at which the lineages of cluster ``n + a`` and
    ``selected[j]`` split, and ``nested[a, j]``, true where one is the other's ancestor (then
    hdbscan uses the point's own lambda instead).
    """
    m = cluster_parent.shape[0]
    height = np.zeros((m, selected.shape[0]))
    nested = np.zeros((m, selected.shape[0]), np.bool_)
    for a in range(m):
        for j in range(selected.shape[0]):
            left, right = a + n, selected[j]
            took_left = took_right = False
            last = left
            while left != right:
                if left > right:
                    took_left = True
                    last = left
                    left = cluster_parent[left - n]
                else:
                    took_right = True
                    last = right
                    right = cluster_parent[right - n]
            if took_left and took_right:
                height[a, j] = cluster_birth[last - n]
            else:
                nested[a, j] = True
    return height, nested


class _TrainingTree:
    """``sklearn.neighbors.KDTree.query``'s signature over the fitted model's neighbour search."""

    def __init__(self, search: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]):
        self._search = search

    def query(self, X: Any, k: int = 1, return_distance: bool = True, **_: Any) -> Any:
        """Nearest training points of ``X``: ``(distances, indices)``, ascending."""
        dist, idx = self._search(np.asarray(X, dtype=np.float64), int(k))
        return (dist, idx) if return_distance else idx


class PredictionData:
    """What soft clustering needs from a fitted model, under hdbscan's attribute names.

    Parameters
    ----------
    raw_data : ndarray (n, d)
        The clustered vectors (L2-normalised for ``metric="cosine"``).
    condensed_tree : ndarray
        hdbscan's raw condensed tree.
    labels : ndarray (n,)
        Flat labels of the fit.
    core_distances : ndarray (n,)
        Core distances counting the point itself (hdbscan's prediction convention).
    search : callable
        ``search(X, k) -> (distances, indices)`` over ``raw_data``, in the model's metric.
    metric : {"euclidean", "cosine"}
    """

    def __init__(
        self,
        raw_data: np.ndarray,
        condensed_tree: np.ndarray,
        labels: np.ndarray,
        core_distances: np.ndarray,
        search: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]],
        metric: str = "euclidean",
    ) -> None:
        from hdbscan.dist_metrics import DistanceMetric

        n = labels.shape[0]
        self._rows = raw_data
        self.core_distances = core_distances
        self.tree = _TrainingTree(search)
        self.metric = metric
        self.dist_metric = DistanceMetric.get_metric(metric)
        tree = condensed_tree
        parent = tree["parent"].astype(np.int64)
        child = tree["child"].astype(np.int64)
        lam = tree["lambda_val"].astype(np.float64)
        is_point = tree["child_size"] == 1
        n_clusters = max(int(parent.max(initial=n)) - n + 1, 1)
        self.cluster_tree = tree[~is_point]
        self.cluster_parent = np.full(n_clusters, -1, np.int64)
        self.cluster_birth = np.zeros(n_clusters)
        self.cluster_parent[child[~is_point] - n] = parent[~is_point]
        self.cluster_birth[child[~is_point] - n] = lam[~is_point]
        leaf_max = np.full(n_clusters, -np.inf)
        np.maximum.at(leaf_max, parent - n, lam)
        self.point_cluster = np.full(n, n, np.int64)
        self.point_lambda = np.zeros(n)
        self.point_cluster[child[is_point]] = parent[is_point]
        self.point_lambda[child[is_point]] = lam[is_point]
        self.leaf_max_lambda = leaf_max

        points = child[is_point]
        # hdbscan's choice: the smallest tree cluster among each label's points
        label_of = labels[points]
        first = np.full(int(labels.max(initial=-1)) + 1, np.iinfo(np.int64).max)
        np.minimum.at(first, label_of[label_of >= 0], parent[is_point][label_of >= 0])
        self.selected = np.sort(first).astype(np.int64)
        self.cluster_map = {int(c): i for i, c in enumerate(self.selected)}
        self.reverse_cluster_map = {i: c for c, i in self.cluster_map.items()}
        self.leaf_max_lambdas = {int(c + n): float(v) for c, v in enumerate(leaf_max)}
        self.max_lambdas: dict[int, float] = {}
        exemplar_idx: list[np.ndarray] = []
        kids: dict[int, list[int]] = {}
        for c, p in enumerate(self.cluster_parent):
            if p >= 0:
                kids.setdefault(int(p), []).append(c + n)
        # a leaf's exemplars are its points at its deepest lambda; grouped by leaf once, so
        # each selected cluster gathers its leaves' groups instead of scanning every point
        # (clusters x points: benchmarks/README.md)
        at_top = is_point & (lam == leaf_max[parent - n])
        top_leaf, top_point = parent[at_top], child[at_top]
        by_leaf = np.argsort(top_leaf, kind="stable")
        top_leaf, top_point = top_leaf[by_leaf], top_point[by_leaf]
        for c in self.selected:
            below, leaves, todo = [], [], [int(c)]
            while todo:
                node = todo.pop()
                below.append(node)
                if node in kids:
                    todo.extend(kids[node])
                else:
                    leaves.append(node)
            for b in below:
                self.cluster_map[b] = self.cluster_map[int(c)]
                self.max_lambdas[b] = float(leaf_max[c - n])
            starts = np.searchsorted(top_leaf, leaves, side="left")
            stops = np.searchsorted(top_leaf, leaves, side="right")
            groups = [top_point[a:b] for a, b in zip(starts, stops, strict=True)]
            exemplar_idx.append(np.sort(np.concatenate(groups)))
        self.exemplar_indices = exemplar_idx
        self.exemplars = [raw_data[i].astype(np.float64) for i in exemplar_idx]
        self.height, self.nested = _merge_heights(
            self.cluster_parent, self.cluster_birth, self.selected, n
        )

    @property
    def raw_data(self) -> np.ndarray:
        """The clustered rows in float64, as hdbscan's compiled prediction code reads them."""
        return self._rows.astype(np.float64, copy=False)

    def _heights(self, cluster: np.ndarray, lam: np.ndarray) -> np.ndarray:
        """``merge_height`` of points in tree ``cluster`` at ``lam`` with every selected one."""
        n = self.point_cluster.shape[0]
        rows = cluster - n
        return np.where(self.nested[rows], lam[:, None], self.height[rows])

    @functools.cached_property
    def _stacked_exemplars(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(exemplars, starts, cluster_norm, augmented)``: every cluster's exemplars end to end.

        ``starts``: where each cluster's begin, and the end; ``cluster_norm``: each cluster's
        largest squared norm. ``augmented`` is ``[e, |e|^2]`` transposed, so that one product
        with ``[-2x, 1]`` gives ``|e|^2 - 2 x.e``: the squared distance but for ``|x|^2``,
        which is the same for a row's every exemplar and is added after the minimum. The
        block of rows x exemplars is the largest array (28k x 40k at 1M); each pass over it
        cost more than the product itself. Built once: blocks of rows call for it again.
        """
        exemplars = np.vstack(self.exemplars)
        starts = np.cumsum([0] + [len(e) for e in self.exemplars])
        ex_norm = np.einsum("ij,ij->i", exemplars, exemplars)
        cluster_norm = np.maximum.reduceat(ex_norm, starts[:-1])
        augmented = np.hstack([exemplars, ex_norm[:, None]]).T.copy()
        return exemplars, starts, cluster_norm, augmented

    def exemplar_distance(self, X: np.ndarray) -> np.ndarray:
        """Distance from each row of ``X`` to each selected cluster's nearest exemplar."""
        k = len(self.exemplars)
        out = np.empty((X.shape[0], k))
        if k == 0:
            return out
        exemplars, starts, cluster_norm, augmented = self._stacked_exemplars
        rows = max(1, _BLOCK_FLOATS // len(exemplars))
        # one buffer for every block's products: a new 64 MiB array per block had its pages
        # faulted in anew each time (benchmarks/README.md)
        products = np.empty((min(rows, X.shape[0]), len(exemplars)))
        for start in range(0, X.shape[0], rows):
            block = np.asarray(X[start : start + rows], dtype=np.float64)
            b_norm = np.einsum("ij,ij->i", block, block)
            d2 = products[: len(block)]
            np.matmul(np.hstack([-2.0 * block, np.ones((len(block), 1))]), augmented, out=d2)
            nearest = np.minimum.reduceat(d2, starts[:-1], axis=1)
            nearest += b_norm[:, None]
            # near zero the product form is all rounding; there (a point at or beside an
            # exemplar, so few) the cluster's distances are summed directly, so that a point
            # at an exemplar gets exactly 0, as in hdbscan
            near = nearest <= _ROUNDING * (b_norm[:, None] + cluster_norm[None, :])
            for i, j in zip(*np.nonzero(near), strict=True):
                diff = exemplars[starts[j] : starts[j + 1]] - block[i]
                nearest[i, j] = np.einsum("ij,ij->i", diff, diff).min()
            out[start : start + len(block)] = np.sqrt(np.maximum(nearest, 0.0))
        if self.metric == "cosine":  # on unit vectors: 1 - cos = |a - b|^2 / 2
            out = out * out / 2.0
        return out


def _inverse_distance_vectors(dist: np.ndarray) -> np.ndarray:
    """Compute hdbscan's ``dist_membership_vector``: normalised 1/d, huge where d == 0."""
    k = dist.shape[1]
    with np.errstate(divide="ignore"):
        inv = np.where(dist != 0, 1.0 / dist, np.finfo(np.float64).max / k)
    return inv / inv.sum(1, keepdims=True)


def all_points_vectors(data: PredictionData, rows: np.ndarray | None = None) -> np.ndarray:
    """Compute hdbscan's ``all_points_membership_vectors`` for the training points.

    ``rows`` (indices) restricts it to those training points: a row's vector depends on
    nothing but its own point, so the result equals those rows of the full one, at
    ``len(rows) x n_clusters`` in place of ``n_samples x n_clusters``.
    """
    n = data.point_cluster.shape[0]
    k = data.selected.shape[0]
    picked = np.arange(n) if rows is None else np.asarray(rows, dtype=np.intp)
    if k == 0:
        return np.zeros(len(picked))
    # by blocks of rows: each step holds a few rows x clusters float64 arrays, which for
    # 171k rows x 1,243 clusters (explain at 3M) were 1.7 GB apiece
    out = np.empty((len(picked), k))
    step = max(1, _VECTOR_FLOATS // k)
    for start in range(0, len(picked), step):
        out[start : start + step] = _point_vectors(data, picked[start : start + step])
    return out


def _point_vectors(data: PredictionData, picked: np.ndarray) -> np.ndarray:
    """:func:`all_points_vectors` of the training points ``picked``, in one block."""
    n = data.point_cluster.shape[0]
    point_cluster = data.point_cluster[picked]
    point_lambda = data.point_lambda[picked]
    distance = _inverse_distance_vectors(data.exemplar_distance(data._rows[picked]))
    heights = data._heights(point_cluster, point_lambda)
    max_lambda = data.leaf_max_lambda[point_cluster - n] + 1e-8
    with np.errstate(divide="ignore"):
        scores = np.exp(-(max_lambda[:, None] / heights))
    # hdbscan's softmax takes one max over all rows; scores lie in [0, 1], so the max only
    # shifts exponents that the row's own sum divides out again
    outlier = np.exp(scores - np.nanmax(scores, initial=0.0))
    outlier /= outlier.sum(1, keepdims=True)
    nearest = heights.argmax(1)
    top = np.maximum(data.leaf_max_lambda[data.selected[nearest] - n], point_lambda)
    in_some_cluster = heights.max(1) / top
    result = distance * outlier
    result /= result.sum(1, keepdims=True)
    return result * in_some_cluster[:, None]


def membership_vectors(
    data: PredictionData, X: np.ndarray, nbr_dist: np.ndarray, nbr_idx: np.ndarray, ms: int
) -> np.ndarray:
    """Compute hdbscan's ``membership_vector`` for new points from their ``2 ms`` neighbours."""
    n = data.point_cluster.shape[0]
    k = data.selected.shape[0]
    m = X.shape[0]
    if k == 0:
        return np.zeros((m, 0))
    col = min(ms, nbr_dist.shape[1] - 1)
    mr = np.maximum(np.maximum(data.core_distances[nbr_idx], nbr_dist[:, col : col + 1]), nbr_dist)
    j = mr.argmin(1)
    nearest = nbr_idx[np.arange(m), j]
    d = mr[np.arange(m), j]
    with np.errstate(divide="ignore"):
        lam = np.where(d > 0, 1.0 / d, np.finfo(np.float64).max)
    lam = np.minimum(lam, data.point_lambda[nearest])
    cluster = data.point_cluster[nearest]
    distance = _inverse_distance_vectors(data.exemplar_distance(X))
    # hdbscan passes lambda as float32 to its outlier scores
    heights32 = data._heights(cluster, lam.astype(np.float32).astype(np.float64))
    max_lambda = data.leaf_max_lambda[cluster - n][:, None]
    denom = max_lambda - heights32
    scores = max_lambda / np.where(denom <= 0, 1e-8, denom)
    outlier = np.exp(scores - np.nanmax(scores, axis=1, keepdims=True))
    outlier /= outlier.sum(1, keepdims=True)
    result = distance**0.5 * outlier**2.0
    result /= result.sum(1, keepdims=True)
    heights = data._heights(cluster, lam)
    top = np.maximum(lam, data.leaf_max_lambda[data.selected[heights.argmax(1)] - n]) + 1e-8
    return result * (heights.max(1) / top)[:, None]
