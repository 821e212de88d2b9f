"""hdbscan and scikit-learn references, and comparing labelings whose cluster ids differ.

Cluster ids follow the order in which ties were broken, so labelings are compared through
a majority mapping or the ARI, never id by id.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.spatial.distance import cdist
from sklearn.cluster import HDBSCAN as SkHDBSCAN
from sklearn.datasets import make_blobs
from sklearn.neighbors import KDTree

EXACT_ALGORITHMS = (
    "generic",
    "prims_kdtree",
    "prims_balltree",
    "boruvka_kdtree",
    "boruvka_balltree",
)


def aniso() -> np.ndarray:
    """Four sheared 2-d blobs: many equal core distances between neighbours."""
    X, _ = make_blobs(1200, 2, centers=4, random_state=2)
    return X @ np.array([[0.6, -0.6], [-0.4, 0.8]])


def duplicated_rows() -> np.ndarray:
    """Blobs of mixed spread with their first 300 rows repeated: distance-0 ties."""
    X, _ = make_blobs(700, 4, centers=5, cluster_std=[0.3, 0.6, 1.0, 1.5, 2.0], random_state=1)
    return np.vstack([X, X[:300]])


def label_map(ours: np.ndarray, ref: np.ndarray) -> dict[int, int]:
    """Majority mapping of our label ids onto the reference's; noise maps to noise."""
    out = {-1: -1}
    for lab in np.unique(ours[ours >= 0]):
        vals, counts = np.unique(ref[ours == lab], return_counts=True)
        out[int(lab)] = int(vals[counts.argmax()])
    return out


def core_distances(X: np.ndarray, params: dict) -> np.ndarray:
    """Core distances as hdbscan's: the ``min_samples``-th nearest other point."""
    min_samples = params.get("min_samples") or params["min_cluster_size"]
    return KDTree(X).query(X, k=min_samples + 1)[0][:, -1].copy()


def prims_tree(X: np.ndarray, params: dict) -> np.ndarray:
    """Spanning tree of hdbscan's Prim's algorithm, rows in the order Prim's added them."""
    from hdbscan._hdbscan_linkage import mst_linkage_core_vector
    from hdbscan.dist_metrics import DistanceMetric

    X = np.ascontiguousarray(X, dtype=np.float64)
    metric = DistanceMetric.get_metric("euclidean")
    return mst_linkage_core_vector(X, core_distances(X, params), metric, 1.0)


def prims_in_order(X: np.ndarray, params: dict) -> np.ndarray:
    """Labels of hdbscan's Prim's tree sorted *stably*: tied edges kept in Prim's order.

    hdbscan's own Prim's algorithms sort with NumPy's default ``argsort``, which is not
    stable: which of two tied rows comes first then depends on NumPy's sorting kernel, and
    so on the CPU's instruction set (AVX-512 or not). This reference does not.
    """
    from hdbscan._hdbscan_linkage import label
    from hdbscan.hdbscan_ import _tree_to_labels

    tree = prims_tree(X, params)
    tree = tree[np.argsort(tree[:, 2], kind="stable")]
    method = params.get("cluster_selection_method", "eom")
    return _tree_to_labels(X, label(tree), params["min_cluster_size"], method)[0]


def exact_references(X: np.ndarray, params: dict) -> list[np.ndarray]:
    """Labels of every exact HDBSCAN* of hdbscan and of scikit-learn's."""
    import hdbscan

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels = [
            hdbscan.HDBSCAN(approx_min_span_tree=False, algorithm=a, **params).fit(X).labels_
            for a in EXACT_ALGORITHMS
        ]
    # scikit-learn counts the point itself in min_samples (hdbscan.md point 2)
    sk_params = dict(params)
    sk_params["min_samples"] = (params.get("min_samples") or params["min_cluster_size"]) + 1
    labels.append(SkHDBSCAN(copy=True, **sk_params).fit(X).labels_)
    return labels


def all_tied_edges(X: np.ndarray, params: dict, weights: np.ndarray) -> np.ndarray:
    """Every edge ``(a, b, mr)`` of the complete mutual-reachability graph weighing a ``weights``.

    Brute force: small data only.
    """
    core = core_distances(X, params)
    mr = np.maximum(np.maximum(core[:, None], core[None, :]), cdist(X, X))
    a, b = np.triu_indices(len(X), 1)
    w = mr[a, b]
    keep = np.isin(w, weights)
    return np.column_stack([a[keep], b[keep], w[keep]]).astype(np.float64)
