"""From an MST to HDBSCAN* labels, and the lookup tables behind ``approximate_predict``.

HDBSCAN* (Campello, Moulavi & Sander 2013) as the ``hdbscan`` library computes it, whose
labels we promise to reproduce: the binary single-linkage tree, its condensing, the cluster
stabilities, the excess-of-mass/leaf selection and GLOSH are ports of hdbscan's labelling,
``condense_tree``, ``compute_stability``, ``get_clusters`` and ``outlier_scores``
(:mod:`ops.phdbscan._condense`, :mod:`ops.phdbscan._stability`,
:mod:`ops.phdbscan._selection`, :mod:`ops.phdbscan._glosh`), their per-point loops in numba,
tested against hdbscan's compiled routines, which are much slower at 1M rows (figures:
benchmarks/README.md). hdbscan's ``simplify_hierarchy`` (``cluster_selection_persistence``)
is called as it is. The tree's rows come in hdbscan's order
(:mod:`ops.phdbscan._prims_order`). What is written here is the glue, and a vectorised
version of hdbscan's per-point prediction walk so that new points are labelled with array
operations instead of a Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numba
import numpy as np
from hdbscan._hdbscan_tree import simplify_hierarchy

from ops.phdbscan._condense import condense_tree
from ops.phdbscan._selection import select_clusters
from ops.phdbscan._stability import cluster_stability

__all__ = [
    "PredictionTables",
    "predict_points",
    "prediction_tables",
    "single_linkage",
    "tree_to_labels",
]


@numba.njit(cache=True)
def _label(L: np.ndarray, parent: np.ndarray, size: np.ndarray, cluster: np.ndarray) -> np.ndarray:
    """Label merges as ``hdbscan._hdbscan_linkage.label`` does (same output, much faster).

    ``parent``, ``size`` and ``cluster`` (n,) start as ``arange``, ones and ``arange``: a
    union-find over the points, by size with path halving, and each root's cluster label
    (a point, or ``n + i`` after merge ``i``). hdbscan's parent chain runs through all
    ``2n - 1`` tree nodes, whose random walks cost 1.3 of 1.6 s at 3M rows against 0.3 s
    here; int32 arrays keep what the walks touch inside the cache longer.
    """
    n = L.shape[0] + 1
    out = np.empty((n - 1, 4))
    for i in range(n - 1):
        a = np.int64(L[i, 0])
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        b = np.int64(L[i, 1])
        while parent[b] != b:
            parent[b] = parent[parent[b]]
            b = parent[b]
        out[i, 0], out[i, 1], out[i, 2] = cluster[a], cluster[b], L[i, 2]
        out[i, 3] = size[a] + size[b]
        if size[a] < size[b]:
            a, b = b, a
        parent[b] = a
        size[a] += size[b]
        cluster[a] = n + i
    return out


def single_linkage(mst: np.ndarray) -> np.ndarray:
    """Scipy-format single-linkage tree from MST rows ``(a, b, weight)``.

    The binary shape of equal-height merges follows the rows' order (a stable sort): give the
    rows in hdbscan's order (:func:`ops.phdbscan._prims_order.hdbscan_order`) for its tree.
    """
    mst = np.asarray(mst, dtype=np.float64)
    n = mst.shape[0] + 1
    ids = np.arange(n, dtype=np.int32 if 2 * n < 2**31 else np.int64)
    rows = np.ascontiguousarray(mst[np.argsort(mst[:, 2], kind="stable")])
    return _label(rows, ids.copy(), np.ones(n, ids.dtype), ids)


def tree_to_labels(
    mst: np.ndarray,
    min_cluster_size: int,
    cluster_selection_method: str = "eom",
    allow_single_cluster: bool = False,
    cluster_selection_epsilon: float = 0.0,
    max_cluster_size: int = 0,
    cluster_selection_persistence: float = 0.0,
    cluster_selection_epsilon_max: float = float("inf"),
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Condense, score and select clusters as ``hdbscan._tree_to_labels``.

    ``mst`` rows in hdbscan's order (:func:`ops.phdbscan._prims_order.hdbscan_order`) give
    hdbscan's single-linkage tree, condensed tree, stability and selection.

    Returns
    -------
    labels, probabilities, stabilities, condensed_tree
    """
    condensed = condense_tree(single_linkage(mst), min_cluster_size)
    if cluster_selection_persistence > 0.0 and condensed.shape[0] > 0:
        condensed = simplify_hierarchy(condensed, cluster_selection_persistence)
    stability = cluster_stability(condensed)
    labels, probs, stabilities = select_clusters(
        condensed,
        stability,
        cluster_selection_method=cluster_selection_method,
        allow_single_cluster=allow_single_cluster,
        cluster_selection_epsilon=float(cluster_selection_epsilon),
        max_cluster_size=int(max_cluster_size),
        cluster_selection_epsilon_max=float(cluster_selection_epsilon_max),
    )
    return labels, probs, stabilities, condensed


@dataclass
class PredictionTables:
    """Flat arrays that answer hdbscan's ``approximate_predict`` without the tree object.

    Cluster arrays are indexed by ``cluster_id - n_train`` (condensed-tree ids start at
    ``n_train`` for the root).

    Attributes
    ----------
    point_parent, point_lambda : ndarray (n_train,)
        Cluster each training point falls out of, and at which lambda.
    cluster_parent : ndarray (n_clusters,)
        Parent cluster id (``-1`` for the root).
    cluster_birth : ndarray (n_clusters,)
        Lambda at which the cluster splits off its parent.
    cluster_label : ndarray (n_clusters,)
        Flat label of the selected cluster it belongs to, or -1.
    cluster_max_lambda : ndarray (n_clusters,)
        hdbscan's ``max_lambdas``: for clusters under a selected one, the selected cluster's
        largest lambda among its direct rows.
    """

    point_parent: np.ndarray
    point_lambda: np.ndarray
    cluster_parent: np.ndarray
    cluster_birth: np.ndarray
    cluster_label: np.ndarray
    cluster_max_lambda: np.ndarray

    def to_dict(self, prefix: str = "pt_") -> dict[str, np.ndarray]:
        """Arrays keyed for ``np.savez``."""
        return {prefix + f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, np.ndarray], prefix: str = "pt_") -> PredictionTables:
        """Inverse of :meth:`to_dict`."""
        return cls(**{f.name: np.asarray(data[prefix + f.name]) for f in fields(cls)})


def prediction_tables(condensed: np.ndarray, labels: np.ndarray) -> PredictionTables:
    """Build :class:`PredictionTables` from a raw condensed tree and its flat labels.

    Mirrors ``hdbscan.prediction.PredictionData`` (0.8.4x), including its choice of each
    label's cluster as the smallest parent id among that label's points.
    """
    n = labels.shape[0]
    parent = condensed["parent"].astype(np.int64)
    child = condensed["child"].astype(np.int64)
    lam = condensed["lambda_val"].astype(np.float64)
    is_point = condensed["child_size"] == 1
    n_clusters = int(max(parent.max(initial=n), child.max(initial=n - 1)) - n + 1)
    n_clusters = max(n_clusters, 1)
    point_parent = np.full(n, n, np.int64)
    point_lambda = np.zeros(n)
    point_parent[child[is_point]] = parent[is_point]
    point_lambda[child[is_point]] = lam[is_point]

    cl_rows = ~is_point
    cluster_parent = np.full(n_clusters, -1, np.int64)
    cluster_birth = np.zeros(n_clusters)
    cluster_parent[child[cl_rows] - n] = parent[cl_rows]
    cluster_birth[child[cl_rows] - n] = lam[cl_rows]
    row_max = np.full(n_clusters, -np.inf)
    np.maximum.at(row_max, parent - n, lam)

    cluster_label = np.full(n_clusters, -1, np.int64)
    cluster_max_lambda = np.zeros(n_clusters)
    labelled = labels[child[is_point]] >= 0
    if labelled.any():
        lab = labels[child[is_point]][labelled]
        seg = parent[is_point][labelled]
        selected = np.full(lab.max() + 1, np.iinfo(np.int64).max)
        np.minimum.at(selected, lab, seg)
        # children have larger ids than parents, so one ascending pass propagates labels down
        for ell, c in enumerate(selected):
            cluster_label[c - n] = ell
            cluster_max_lambda[c - n] = row_max[c - n]
        for c in range(n_clusters):
            p = cluster_parent[c]
            if p >= 0 and cluster_label[c] < 0 and cluster_label[p - n] >= 0:
                cluster_label[c] = cluster_label[p - n]
                cluster_max_lambda[c] = cluster_max_lambda[p - n]
    return PredictionTables(
        point_parent=point_parent,
        point_lambda=point_lambda,
        cluster_parent=cluster_parent,
        cluster_birth=cluster_birth,
        cluster_label=cluster_label,
        cluster_max_lambda=cluster_max_lambda,
    )


def predict_points(
    tables: PredictionTables,
    nbr_dist: np.ndarray,
    nbr_idx: np.ndarray,
    pred_core: np.ndarray,
    min_samples: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised ``hdbscan.prediction.approximate_predict``.

    Parameters
    ----------
    tables : PredictionTables
    nbr_dist, nbr_idx : ndarray (m, 2 * min_samples)
        Nearest training points of each new point, ascending.
    pred_core : ndarray (n_train,)
        Training core distances *counting the point itself* (hdbscan's prediction quirk).
    min_samples : int

    Returns
    -------
    labels : ndarray (m,) int64
    probabilities : ndarray (m,) float64
    """
    m = nbr_dist.shape[0]
    n = tables.point_parent.shape[0]
    if not (tables.cluster_label >= 0).any() or m == 0:
        return np.full(m, -1, np.int64), np.zeros(m)
    col = min(min_samples, nbr_dist.shape[1] - 1)
    mr = np.maximum(np.maximum(pred_core[nbr_idx], nbr_dist[:, col : col + 1]), nbr_dist)
    j = mr.argmin(1)
    rows = np.arange(m)
    nn = nbr_idx[rows, j]
    d = mr[rows, j]
    with np.errstate(divide="ignore"):
        lam = np.where(d > 0, 1.0 / d, np.finfo(np.float64).max)
    cluster = tables.point_parent[nn].copy()
    climb = tables.point_lambda[nn] > lam
    # climb while the current cluster was born at or above the new point's lambda
    while True:
        c = cluster[climb] - n
        up = (cluster[climb] > n) & (tables.cluster_birth[np.maximum(c, 0)] >= lam[climb])
        if not up.any():
            break
        idx = np.flatnonzero(climb)[up]
        cluster[idx] = tables.cluster_parent[cluster[idx] - n]
        climb[np.flatnonzero(climb)[~up]] = False
    labels = tables.cluster_label[cluster - n]
    max_lam = tables.cluster_max_lambda[cluster - n]
    probs = np.where(
        labels >= 0,
        np.where(max_lam > 0, np.minimum(max_lam, lam) / np.where(max_lam > 0, max_lam, 1), 1.0),
        0.0,
    )
    return labels.astype(np.int64), probs
