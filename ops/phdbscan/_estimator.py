"""pHDBSCAN: HDBSCAN* on FAISS kNN graphs, exact or approximate, with hdbscan-compatible labels.

HDBSCAN* (Campello, Moulavi & Sander 2013; Campello, Moulavi, Zimek & Sander 2015) is the
clustering step of the FinDeepBehaviorCluster pipeline (arXiv 2101.04285), whose "pHDBSCAN"
replaces tree-based neighbour search by approximate kNN on FAISS so that millions of
behaviour embeddings can be clustered. The reference ``hdbscan`` library spends almost all
its time building the minimum spanning tree with kd/ball-tree Borůvka, which degrades quickly
above ~10 dimensions. Here the tree comes from :mod:`ops.phdbscan._spanning_tree` (kNN lists,
then kNN-seeded Borůvka, exact or approximate) and everything after the tree follows hdbscan
(the tree's rows in the order hdbscan's Prim's emits and sorts them,
:mod:`ops.phdbscan._prims_order`, then hdbscan's condensing and selection), so with
``mode="exact"`` labels are those of ``hdbscan.HDBSCAN(approx_min_span_tree=False,
algorithm="generic")``, ties included. The fitted attributes,
``prediction_data``, and the functions of :mod:`ops.phdbscan` (``membership_vector``,
``approximate_predict``, ...) carry hdbscan's names and meanings: swap ``hdbscan.HDBSCAN``
for ``PHDBSCAN``.

Examples
--------
>>> from sklearn.datasets import make_blobs
>>> X, _ = make_blobs(500, 8, centers=3, random_state=0)
>>> model = PHDBSCAN(min_cluster_size=10).fit(X)
>>> int(model.labels_.max()) + 1
3
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO, Literal

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.utils.validation import validate_data

from ops.phdbscan._attributes import HDBSCANAttributes
from ops.phdbscan._condense import CONDENSED_DTYPE
from ops.phdbscan._condensed_tree import prediction_tables, tree_to_labels
from ops.phdbscan._knn_graph import MapChunks
from ops.phdbscan._matrix_input import (
    HDBSCAN_ALGORITHMS,
    METRICS,
    PhaseTimer,
    check_finite_rows,
    check_number,
    from_euclidean,
    to_search_space,
)
from ops.phdbscan._persist import load_model, save_model
from ops.phdbscan._prims_order import hdbscan_order
from ops.phdbscan._spanning_tree import SpanningTreeStep

__all__ = ["PHDBSCAN", "phdbscan"]

Mode = Literal["auto", "exact", "approximate"]


# SpanningTreeStep before HDBSCANAttributes: its _index overrides the placeholder that
# HDBSCANAttributes declares for prediction.
class PHDBSCAN(SpanningTreeStep, HDBSCANAttributes, ClusterMixin, BaseEstimator):
    """HDBSCAN* clustering whose spanning tree is built on FAISS/PyTorch kNN graphs.

    Parameters follow ``hdbscan.HDBSCAN`` (same names, defaults and meanings) where both
    have them; ``mode``, ``device``, ``knn_backend``, ``random_state`` and ``knn_map`` are
    pHDBSCAN's.

    Parameters
    ----------
    min_cluster_size : int, default=5
        Smallest group counted as a cluster (must be > 1).
    min_samples : int, optional
        Neighbours defining the core distance, the point itself *excluded* (hdbscan's
        convention since 0.8.27). Defaults to ``min_cluster_size``.
    cluster_selection_epsilon : float, default=0.0
    cluster_selection_persistence : float, default=0.0
        hdbscan's hierarchy simplification: splits less persistent than this are undone.
    max_cluster_size : int, default=0
        Clusters larger than this are split when selecting (0: no limit; EOM only).
    metric : {"euclidean", "cosine"}, default="euclidean"
        Cosine is searched as Euclidean distance between L2-normalised rows
        (``1 - cos = |a - b|^2 / 2``); distances, core distances and λ are in cosine units.
    alpha : float, default=1.0
        ``mr(a, b) = max(core(a), core(b), d(a, b) / alpha)``.
    cluster_selection_method : {"eom", "leaf"}, default="eom"
    allow_single_cluster : bool, default=False
    prediction_data : bool, default=False
        Build :attr:`prediction_data_` at fit (else on first use, as
        :meth:`generate_prediction_data` does).
    cluster_selection_epsilon_max : float, default=inf
    algorithm, leaf_size, approx_min_span_tree, gen_min_span_tree, core_dist_n_jobs
        hdbscan's tree-search settings, accepted so that hdbscan code runs unchanged. They have
        no effect: the tree always comes from ``mode`` and is always kept.
    mode : {"auto", "exact", "approximate"}, default="auto"
        ``"exact"``: MST of the complete mutual-reachability graph (exact kNN plus certified
        Borůvka). ``"approximate"``: IVF kNN and kNN-only Borůvka, the pHDBSCAN trade-off
        for millions of rows. ``"auto"``: exact up to ``AUTO_EXACT_MAX_N`` rows (20k; 2M with a
        GPU, where brute-force kNN is cheap), approximate above.
    device : {"auto", "cpu", "cuda"}, default="auto"
        Where kNN runs. ``"cpu"`` forces FAISS CPU even when a GPU is present.
    knn_backend : str, optional
        Force an :class:`ops.phdbscan._knn.KNNIndex` backend (``"flat"``, ``"ivf"``, ``"hnsw"``,
        ``"faiss_gpu"``, ``"torch"``).
    random_state : int, optional
        Seeds IVF training and the k-means cells of the exact search.
    knn_map : callable, optional
        ``map``'s signature (``knn_map(fn, items)`` yields ``fn(item)`` per item, in order):
        runs the CPU kNN graph's chunks of cells (``knn_backend_ == "cells"``), for instance
        as parallel Ray tasks (``infra.ray.ray_map``). The graph, hence the labels, are the
        same as with the default, a pool of threads in this process, on the same kind of CPU.
        It must survive ``copy.deepcopy`` (scikit-learn's ``clone``): a function, or an
        object holding no locks; it is not saved with the model. The GPU engines search in
        one call and do not use it.

    Attributes
    ----------
    labels_ : ndarray (n,) int64
        Cluster of each point, 0..K-1 in order of condensed-tree cluster id; -1 is noise.
    probabilities_ : ndarray (n,)
        Membership strength (lambda of the point over the cluster's maximal lambda).
    outlier_scores_ : ndarray (n,)
        GLOSH scores, computed on first access (as hdbscan does).
    cluster_persistence_ : ndarray (K,)
    condensed_tree_, single_linkage_tree_, minimum_spanning_tree_ : hdbscan.plots objects
        With ``.plot()``, ``.to_numpy()``, ``.to_pandas()``, ``.to_networkx()``.
    prediction_data_, exemplars_, relative_validity_
        As hdbscan's (:class:`ops.phdbscan._attributes.HDBSCANAttributes`).
    core_distances_ : ndarray (n,)
    n_features_in_ : int
    mode_ : str
        Mode actually used.
    knn_backend_ : str
        kNN engine actually used.
    fit_seconds_ : dict of str to float
        Wall seconds of each phase of the last fit: ``knn`` (the graph), ``knn_forest`` and
        ``mst`` (the spanning tree), ``ties``, ``float64`` (where they ran) and ``tree``
        (condensing, selection and the prediction tables).

    References
    ----------
    Campello, Moulavi & Sander (2013), *Density-based clustering based on hierarchical
    density estimates*, PAKDD. Campello, Moulavi, Zimek & Sander (2015), *Hierarchical
    density estimates for data clustering, visualization, and outlier detection*, TKDD.
    Min et al. (eBay, 2021), *FinDeepBehaviorCluster*, arXiv 2101.04285.
    """

    def __init__(
        self,
        min_cluster_size: int = 5,
        min_samples: int | None = None,
        cluster_selection_epsilon: float = 0.0,
        cluster_selection_persistence: float = 0.0,
        max_cluster_size: int = 0,
        metric: str = "euclidean",
        alpha: float = 1.0,
        algorithm: str = "best",
        leaf_size: int = 40,
        approx_min_span_tree: bool = True,
        gen_min_span_tree: bool = False,
        core_dist_n_jobs: int = 4,
        cluster_selection_method: str = "eom",
        allow_single_cluster: bool = False,
        prediction_data: bool = False,
        cluster_selection_epsilon_max: float = float("inf"),
        mode: Mode = "auto",
        device: str = "auto",
        knn_backend: str | None = None,
        random_state: int | None = None,
        knn_map: MapChunks | None = None,
    ) -> None:
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.cluster_selection_epsilon = cluster_selection_epsilon
        self.cluster_selection_persistence = cluster_selection_persistence
        self.max_cluster_size = max_cluster_size
        self.metric = metric
        self.alpha = alpha
        self.algorithm = algorithm
        self.leaf_size = leaf_size
        self.approx_min_span_tree = approx_min_span_tree
        self.gen_min_span_tree = gen_min_span_tree
        self.core_dist_n_jobs = core_dist_n_jobs
        self.cluster_selection_method = cluster_selection_method
        self.allow_single_cluster = allow_single_cluster
        self.prediction_data = prediction_data
        self.cluster_selection_epsilon_max = cluster_selection_epsilon_max
        self.mode = mode
        self.device = device
        self.knn_backend = knn_backend
        self.random_state = random_state
        self.knn_map = knn_map

    # -- configuration -------------------------------------------------------------------
    def _check_params(self) -> None:
        """Raise ``ValueError`` (as hdbscan does) for a parameter out of its range."""
        check_number("min_cluster_size", self.min_cluster_size, 2, integer=True)
        if self.min_samples is not None:
            check_number("min_samples", self.min_samples, 1, integer=True)
        check_number("cluster_selection_epsilon", self.cluster_selection_epsilon, 0)
        check_number("cluster_selection_persistence", self.cluster_selection_persistence, 0)
        check_number("cluster_selection_epsilon_max", self.cluster_selection_epsilon_max, 0)
        check_number("max_cluster_size", self.max_cluster_size, 0, integer=True)
        check_number("alpha", self.alpha, 0, strict=True)
        check_number("leaf_size", self.leaf_size, 1, integer=True)
        if self.cluster_selection_method not in ("eom", "leaf"):
            raise ValueError("cluster_selection_method must be 'eom' or 'leaf'")
        if self.mode not in ("auto", "exact", "approximate"):
            raise ValueError("mode must be 'auto', 'exact' or 'approximate'")
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {self.metric!r}")
        if self.algorithm not in HDBSCAN_ALGORITHMS:
            raise ValueError(f"algorithm must be one of {HDBSCAN_ALGORITHMS}")

    def _validate(self, X: Any, reset: bool) -> np.ndarray:
        """Check input as scikit-learn does, name non-finite rows, map to the search space.

        scikit-learn's checks: 2-d, numeric, not sparse or complex, ``n_features_in_``.
        """
        X = validate_data(
            self, X, reset=reset, dtype=[np.float64, np.float32], ensure_all_finite=False
        )
        check_finite_rows(X)
        return to_search_space(X, self.metric)

    # -- fitting -------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> PHDBSCAN:
        """Cluster ``X`` (n_samples, n_features); ``y`` is ignored.

        Parameters
        ----------
        X : array-like (n_samples, n_features)
        y : ignored

        Returns
        -------
        PHDBSCAN
            ``self``, fitted.
        """
        self._check_params()
        X = self._validate(X, reset=True)
        n = X.shape[0]
        mcs = int(self.min_cluster_size)
        ms = int(self.min_samples or mcs)
        self._ms_predict = ms  # hdbscan predicts with the unclamped value
        ms = max(1, min(n - 1, ms))
        self.mode_, self.knn_backend_ = self._resolve(n)
        self._raw_data = X
        self._stats = {}
        self._reset_caches()
        if n < 2:
            return self._fit_degenerate(n)
        timer = PhaseTimer(self._stats)
        tree = self._spanning_tree(X, ms, timer)
        # searched in Euclidean units with scaled cores: f(weight) / alpha is hdbscan's mr
        for edges in (tree.edges, tree.tied):
            edges[:, 2] = from_euclidean(edges[:, 2], self.metric) / float(self.alpha)
        self.core_distances_ = from_euclidean(tree.core, self.metric)
        self._pred_core = from_euclidean(tree.pred_core, self.metric)
        # hdbscan's row order: equal weights shape the binary tree and so the labels
        mst = hdbscan_order(tree.edges, tree.tied, tree.order)
        self._min_spanning_tree = mst
        labels, probs, persistence, condensed = tree_to_labels(
            mst,
            mcs,
            self.cluster_selection_method,
            bool(self.allow_single_cluster),
            float(self.cluster_selection_epsilon),
            int(self.max_cluster_size),
            float(self.cluster_selection_persistence),
            float(self.cluster_selection_epsilon_max),
        )
        self.labels_ = np.asarray(labels, dtype=np.int64)
        self.probabilities_ = np.asarray(probs, dtype=np.float64)
        self.cluster_persistence_ = np.asarray(persistence)
        self._condensed_tree = condensed
        self.outlier_scores_ = None  # GLOSH on first use (``outlier_scores_``), as hdbscan
        self._tables = prediction_tables(condensed, self.labels_)
        timer("tree")
        if self.prediction_data:
            self.generate_prediction_data()
        return self

    @property
    def fit_seconds_(self) -> dict[str, float]:
        """Wall seconds of each phase of the last fit (see the class's Attributes)."""
        return {k[5:]: float(v) for k, v in self._stats.items() if k.startswith("time_")}

    def _fit_degenerate(self, n: int) -> PHDBSCAN:
        self.labels_ = np.full(n, -1, np.int64)
        self.probabilities_ = np.zeros(n)
        self.outlier_scores_ = np.zeros(n)
        self.cluster_persistence_ = np.zeros(0)
        self.core_distances_ = np.zeros(n)
        self._min_spanning_tree = np.zeros((0, 3))
        self._condensed_tree = np.zeros(0, CONDENSED_DTYPE)
        self._pred_core = np.zeros(n)
        self._tables = prediction_tables(self._condensed_tree, self.labels_)
        return self

    def fit_predict(self, X: Any, y: Any = None, **kwargs: Any) -> np.ndarray:
        """Fit and return ``labels_``.

        Parameters
        ----------
        X : array-like (n_samples, n_features)
        y : ignored
        **kwargs
            Ignored (scikit-learn's signature).

        Returns
        -------
        ndarray (n_samples,)
        """
        return self.fit(X).labels_

    # -- persistence ---------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str] | BinaryIO) -> None:
        """Write the fitted model to ``path`` (``np.savez``; no pickle, so no code runs on load).

        Parameters
        ----------
        path : path-like or binary file
            A file open for writing need not be seekable.
        """
        save_model(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PHDBSCAN:
        """Rebuild a fitted model written by :meth:`save`.

        Parameters
        ----------
        path : path-like

        Returns
        -------
        PHDBSCAN
        """
        return load_model(cls, path)


def phdbscan(X: Any, **params: Any) -> np.ndarray:
    """Functional form: ``PHDBSCAN(**params).fit(X).labels_``.

    Parameters
    ----------
    X : array-like (n_samples, n_features)
    **params
        :class:`PHDBSCAN` parameters.

    Returns
    -------
    ndarray (n_samples,)
    """
    return PHDBSCAN(**params).fit(X).labels_
