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
from sklearn.metrics import adjusted_rand_score
from sklearn.neighbors import KDTree

from ops.phdbscan import PHDBSCAN

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


def blob_tree(duplicates: bool, seed: int) -> np.ndarray:
    """pHDBSCAN's condensed tree of six 5-d blobs of growing spread (3,000 rows).

    With ``duplicates`` the first 200 rows coincide: points at zero distance leave the tree
    at an infinite lambda.
    """
    X, _ = make_blobs(
        3_000, 5, centers=6, cluster_std=[0.3, 0.5, 1.0, 1.5, 2.0, 4.0], random_state=seed
    )
    if duplicates:
        X[:200] = X[0]
    return PHDBSCAN(min_cluster_size=15, min_samples=5).fit(X)._condensed_tree


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


def prims_sorted(X: np.ndarray, params: dict) -> np.ndarray:
    """hdbscan's Prim's tree sorted as hdbscan sorts it: NumPy's default, unstable ``argsort``.

    How that sort orders tied rows depends on NumPy's sorting kernel (AVX-512 or not), so this
    is the order of hdbscan's Prim's algorithms on *this* machine, whatever it is.
    """
    tree = prims_tree(X, params)
    return tree[np.argsort(tree[:, 2])]


def prims_labels(X: np.ndarray, params: dict) -> np.ndarray:
    """Labels of hdbscan's Prim's (its default above 60 dimensions), built from its parts.

    hdbscan's own Prim's tree (:func:`prims_sorted`) through its labelling, condensing and
    selection: the reference does its sort itself, so it stays the same if a release of
    hdbscan changes which algorithm its default picks.
    """
    from hdbscan._hdbscan_linkage import label
    from hdbscan.hdbscan_ import _tree_to_labels

    method = params.get("cluster_selection_method", "eom")
    tree = label(prims_sorted(X, params))
    return _tree_to_labels(X, tree, params["min_cluster_size"], method)[0]


def default_labels(X: np.ndarray, params: dict) -> np.ndarray:
    """Labels of hdbscan's default exact HDBSCAN* (Prim's above 60 dimensions, else Borůvka)."""
    import hdbscan

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return hdbscan.HDBSCAN(approx_min_span_tree=False, **params).fit(X).labels_


def spread_floor(X: np.ndarray, params: dict) -> float:
    """How well hdbscan's own exact algorithms and scikit-learn's agree with its default.

    The least ARI of :func:`exact_references` against :func:`default_labels`: a labelling
    that reaches it agrees with hdbscan's default at least as well as one of them does.
    """
    default = default_labels(X, params)
    return min(adjusted_rand_score(default, r) for r in exact_references(X, params))


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
