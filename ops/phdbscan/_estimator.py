"""pHDBSCAN: HDBSCAN* on FAISS kNN graphs, exact or approximate, with hdbscan-compatible labels.

HDBSCAN* (Campello, Moulavi & Sander 2013; Campello, Moulavi, Zimek & Sander 2015) is the
clustering step of the FinDeepBehaviorCluster pipeline (arXiv 2101.04285), whose "pHDBSCAN"
replaces tree-based neighbour search by approximate kNN on FAISS so that millions of
behaviour embeddings can be clustered. The reference ``hdbscan`` library spends almost all
its time building the minimum spanning tree with kd/ball-tree Borůvka, which degrades quickly
above ~10 dimensions. Here the tree comes from :mod:`ops.phdbscan._mst` (kNN-seeded Borůvka, exact
or approximate) and everything after the tree is hdbscan's own compiled code
(:mod:`ops.phdbscan._condensed_tree`), so with ``mode="exact"`` labels match
``hdbscan.HDBSCAN(approx_min_span_tree=False)`` up to float ties.

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
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin

from ops.phdbscan._component_join import join_components
from ops.phdbscan._condensed_tree import (
    PredictionTables,
    glosh_scores,
    predict_points,
    prediction_tables,
    tree_to_labels,
)
from ops.phdbscan._knn import KNNIndex, resolve_backend
from ops.phdbscan._knn_forest import knn_forest
from ops.phdbscan._knn_graph import CellIndex, cell_knn, refine_float64
from ops.phdbscan._matrix_input import PhaseTimer, as_finite_matrix
from ops.phdbscan._mst import default_graph_k, mutual_reachability_mst

__all__ = ["PHDBSCAN", "phdbscan"]

Mode = Literal["auto", "exact", "approximate"]

# Above this many points "auto" switches to the approximate tree. The exact tree's searches
# between blob-sized components cost about an all-pairs pass: on the 50k x 64 hybrid vectors of
# the demo it took 145 s against 15 s for the approximate tree (2 busy cores).
AUTO_EXACT_MAX_N = 20_000
# approximate_predict: exact neighbour search up to this many training rows, cells above;
# queries go in blocks of this many so a block's lists (k float64 + int64 each) stay small.
PREDICT_EXACT_MAX_N = 20_000
PREDICT_NPROBE = 8
PREDICT_BLOCK = 65_536
# On a GPU brute force is cheap, but the exact tree's complement searches repeat it; above
# this size the approximate tree (still on exact GPU kNN lists) is used.
AUTO_EXACT_MAX_N_GPU = 2_000_000
_SAVE_VERSION = 1


def _has_faiss() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


class PHDBSCAN(ClusterMixin, BaseEstimator):
    """HDBSCAN* clustering whose spanning tree is built on FAISS/PyTorch kNN graphs.

    Parameters
    ----------
    min_cluster_size : int, default=5
        Smallest group counted as a cluster (must be > 1).
    min_samples : int, optional
        Neighbours defining the core distance, the point itself *excluded* (hdbscan's
        convention since 0.8.27). Defaults to ``min_cluster_size``.
    cluster_selection_method : {"eom", "leaf"}, default="eom"
    allow_single_cluster : bool, default=False
    cluster_selection_epsilon : float, default=0.0
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

    Attributes
    ----------
    labels_ : ndarray (n,) int64
        Cluster of each point, 0..K-1 in order of condensed-tree cluster id; -1 is noise.
    probabilities_ : ndarray (n,)
        Membership strength (lambda of the point over the cluster's maximal lambda).
    outlier_scores_ : ndarray (n,)
        GLOSH scores.
    condensed_tree_ : ndarray
        Structured array ``(parent, child, lambda_val, child_size)`` as hdbscan's raw tree.
    minimum_spanning_tree_ : ndarray (n - 1, 3)
        ``(a, b, mutual reachability)`` rows.
    core_distances_ : ndarray (n,)
    cluster_persistence_ : ndarray (K,)
    mode_ : str
        Mode actually used.
    knn_backend_ : str
        kNN engine actually used.

    References
    ----------
    Campello, Moulavi & Sander (2013), *Density-based clustering based on hierarchical
    density estimates*, PAKDD. Campello, Moulavi, Zimek & Sander (2015), *Hierarchical
    density estimates for data clustering, visualization, and outlier detection*, TKDD.
    Xu et al. (2021), *FinDeepBehaviorCluster*, arXiv 2101.04285.
    """

    def __init__(
        self,
        min_cluster_size: int = 5,
        min_samples: int | None = None,
        cluster_selection_method: str = "eom",
        allow_single_cluster: bool = False,
        cluster_selection_epsilon: float = 0.0,
        mode: Mode = "auto",
        device: str = "auto",
        knn_backend: str | None = None,
        random_state: int | None = None,
    ) -> None:
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.cluster_selection_method = cluster_selection_method
        self.allow_single_cluster = allow_single_cluster
        self.cluster_selection_epsilon = cluster_selection_epsilon
        self.mode = mode
        self.device = device
        self.knn_backend = knn_backend
        self.random_state = random_state

    # -- configuration -------------------------------------------------------------------
    def _check_params(self) -> None:
        if int(self.min_cluster_size) != self.min_cluster_size or self.min_cluster_size < 2:
            raise ValueError("min_cluster_size must be an integer > 1")
        if self.min_samples is not None and (
            int(self.min_samples) != self.min_samples or self.min_samples < 1
        ):
            raise ValueError("min_samples must be a positive integer")
        if self.cluster_selection_method not in ("eom", "leaf"):
            raise ValueError("cluster_selection_method must be 'eom' or 'leaf'")
        if self.cluster_selection_epsilon < 0:
            raise ValueError("cluster_selection_epsilon must be >= 0")
        if self.mode not in ("auto", "exact", "approximate"):
            raise ValueError("mode must be 'auto', 'exact' or 'approximate'")

    def _gpu(self) -> bool:
        if self.device == "cpu":
            return False
        return resolve_backend("auto") in ("faiss_gpu", "torch")

    def _resolve(self, n: int) -> tuple[str, str]:
        gpu = self._gpu()
        mode = self.mode
        if mode == "auto":
            limit = AUTO_EXACT_MAX_N_GPU if gpu else AUTO_EXACT_MAX_N
            mode = "exact" if n <= limit else "approximate"
        if self.knn_backend is not None:
            backend = self.knn_backend
        elif gpu:
            backend = resolve_backend("auto")
        else:
            backend = "cells" if _has_faiss() else "torch"
        return mode, backend

    def _index(self, backend: str) -> KNNIndex:
        device = "auto" if self.device in ("auto", "cuda") else self.device
        return KNNIndex(backend, device=device, random_state=self.random_state or 0)  # type: ignore[arg-type]

    # -- fitting -------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> PHDBSCAN:
        """Cluster ``X`` (n_samples, n_features); ``y`` is ignored."""
        self._check_params()
        X = as_finite_matrix(X)
        n = X.shape[0]
        mcs = int(self.min_cluster_size)
        ms = int(self.min_samples or mcs)
        self._ms_predict = ms  # hdbscan predicts with the unclamped value
        ms = max(1, min(n - 1, ms))
        self.mode_, self.knn_backend_ = self._resolve(n)
        self._X = X
        if n < 2:
            return self._fit_degenerate(n)

        self._stats: dict[str, Any] = {}
        timer = PhaseTimer(self._stats)
        exact = self.mode_ == "exact"
        # exact: a few extra neighbours certify more Borůvka edges without search;
        # approximate: min_samples + 1 is all the core distance needs
        k_query = min(n, default_graph_k(ms, n) + 1 if exact else ms + 1)
        if self.knn_backend_ == "cells":
            dist32, idx = cell_knn(X, k_query, exact=exact, seed=self.random_state or 0)
            knn_is_exact = exact
        else:
            index = self._index(self.knn_backend_).fit(X)
            dist32, idx = index.search(X, k_query)
            knn_is_exact = index.exact
        timer("knn")
        if exact:
            dist, idx = refine_float64(X, idx)
            core = dist[:, ms - 1].copy()
            # hdbscan's prediction core distance counts the point itself
            pred = dist[:, min(max(self._ms_predict - 2, 0), dist.shape[1] - 1)]
            timer("float64")
            mst = mutual_reachability_mst(
                X,
                dist,
                idx,
                core,
                knn_is_exact=knn_is_exact,
                seed=self.random_state or 0,
                stats=self._stats,
            )
        else:
            # float32 FAISS distances as they are: the approximate tree has no ties to honour
            core = dist32[:, ms].astype(np.float64)
            pred = dist32[:, min(max(self._ms_predict - 1, 0), k_query - 1)]
            forest, comp = knn_forest(idx, dist32, core)
            timer("knn_forest")
            self._stats["forest_components"] = len(np.unique(comp))
            mst = np.vstack([forest, join_components(X, core, comp, exact=False)])
        timer("mst")
        self.core_distances_ = core
        self._pred_core = np.zeros(n) if self._ms_predict < 2 else pred.astype(np.float64)
        self._mst = mst
        labels, probs, persistence, condensed = tree_to_labels(
            mst,
            mcs,
            self.cluster_selection_method,
            bool(self.allow_single_cluster),
            float(self.cluster_selection_epsilon),
        )
        self.labels_ = np.asarray(labels, dtype=np.int64)
        self.probabilities_ = np.asarray(probs, dtype=np.float64)
        self.cluster_persistence_ = np.asarray(persistence)
        self.condensed_tree_ = condensed
        self.outlier_scores_ = glosh_scores(condensed)
        self._tables = prediction_tables(condensed, self.labels_)
        timer("tree")
        self._pred_index: KNNIndex | CellIndex | None = None
        return self

    def _fit_degenerate(self, n: int) -> PHDBSCAN:
        self.labels_ = np.full(n, -1, np.int64)
        self.probabilities_ = np.zeros(n)
        self.outlier_scores_ = np.zeros(n)
        self.cluster_persistence_ = np.zeros(0)
        self.core_distances_ = np.zeros(n)
        self._mst = np.zeros((0, 3))
        self.condensed_tree_ = np.zeros(
            0,
            dtype=[
                ("parent", np.intp),
                ("child", np.intp),
                ("lambda_val", np.float64),
                ("child_size", np.intp),
            ],
        )
        self._pred_core = np.zeros(n)
        self._tables = prediction_tables(self.condensed_tree_, self.labels_)
        self._pred_index = None
        return self

    def fit_predict(self, X: Any, y: Any = None, **kwargs: Any) -> np.ndarray:
        """Fit and return ``labels_``."""
        return self.fit(X).labels_

    # -- prediction ----------------------------------------------------------------------
    def approximate_predict(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Labels and probabilities of new points without re-clustering.

        Follows ``hdbscan.prediction.approximate_predict``: a new point attaches to its
        training neighbour of smallest mutual reachability and takes the cluster alive at
        that lambda; the tree is not rebuilt, so labels are those of the original fit.

        Returns
        -------
        labels : ndarray (m,) int64
        probabilities : ndarray (m,) float64
        """
        if not hasattr(self, "_tables"):
            raise RuntimeError("PHDBSCAN.approximate_predict called before fit")
        X = as_finite_matrix(X)
        if X.shape[1] != self._X.shape[1]:
            raise ValueError("new points' dimension does not match the fitted data")
        n = self._X.shape[0]
        if n < 2 or X.shape[0] == 0:
            return np.full(X.shape[0], -1, np.int64), np.zeros(X.shape[0])
        if self._pred_index is None:
            self._pred_index = self._predict_index(n).fit(self._X)
        k = min(n, 2 * self._ms_predict)
        labels = np.empty(X.shape[0], np.int64)
        probabilities = np.empty(X.shape[0], np.float64)
        for start in range(0, X.shape[0], PREDICT_BLOCK):
            block = X[start : start + PREDICT_BLOCK]
            _, candidates = self._pred_index.search(block, k)
            # Re-ranked in float64 from the coordinates (FAISS's float32 expansion blurs
            # near-ties) so they resolve as hdbscan's would; a numba loop over the k
            # candidates, ~10x cheaper than gathering them as a numpy block.
            dist, idx = refine_float64(self._X, candidates, queries=block)
            labels[start : start + len(block)], probabilities[start : start + len(block)] = (
                predict_points(self._tables, dist, idx, self._pred_core, self._ms_predict)
            )
        return labels, probabilities

    def _predict_index(self, n: int) -> KNNIndex | CellIndex:
        """Exact search on small training sets; cell-grouped search above ``PREDICT_EXACT_MAX_N``.

        A flat search costs every training row per new point (50k distances a point at the
        demo's size); ``2 sqrt(n)`` k-means cells, each new point searched with the others of its
        cell against ``PREDICT_NPROBE`` cells around it, cost about ``4 sqrt(n)`` (900 at 50k)
        at GEMM speed (:class:`ops.phdbscan._knn_graph.CellIndex`; FAISS's IVF scanned them per
        query at about 4x the cost). Only the attachment point must be
        found, not a full kNN list: on 50k blobs x 48 the nearest neighbour was found for
        99.5% of new points. ``benchmarks/bench_score.py`` prints the share of labels that
        agree with exact search, and both rates.
        """
        approx = ("ivf", "hnsw", "cells")
        backend = "flat" if self.knn_backend_ in approx else self.knn_backend_
        if backend != "flat" or n <= PREDICT_EXACT_MAX_N:
            return self._index(backend)
        return CellIndex(int(2 * np.sqrt(n)), PREDICT_NPROBE, seed=self.random_state or 0)

    # -- persistence ---------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write what :meth:`approximate_predict` needs to ``path`` with ``np.savez``.

        No pickle: arrays and a few scalars only, so a model file cannot execute code.
        """
        params = self.get_params()
        arrays: dict[str, Any] = {
            "version": np.int64(_SAVE_VERSION),
            "X": self._X,
            "labels": self.labels_,
            "probabilities": self.probabilities_,
            "outlier_scores": self.outlier_scores_,
            "core_distances": self.core_distances_,
            "pred_core": self._pred_core,
            "ms_predict": np.int64(self._ms_predict),
            "condensed_tree": self.condensed_tree_,
            "mode_": np.str_(self.mode_),
            "knn_backend_": np.str_(self.knn_backend_),
        }
        for key, val in params.items():
            arrays["param_" + key] = np.array(val if val is not None else "__none__")
        arrays.update(self._tables.to_dict())
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PHDBSCAN:
        """Rebuild a fitted model written by :meth:`save` (``allow_pickle=False``)."""
        with np.load(Path(path), allow_pickle=False) as data:
            if int(data["version"]) != _SAVE_VERSION:
                raise ValueError(f"unsupported PHDBSCAN file version {int(data['version'])}")
            params: dict[str, Any] = {}
            for key in data.files:
                if key.startswith("param_"):
                    val = data[key].item()
                    params[key[6:]] = None if val == "__none__" else val
            model = cls(**params)
            model._X = data["X"]
            model.labels_ = data["labels"]
            model.probabilities_ = data["probabilities"]
            model.outlier_scores_ = data["outlier_scores"]
            model.core_distances_ = data["core_distances"]
            model._pred_core = data["pred_core"]
            model._ms_predict = int(data["ms_predict"])
            model.condensed_tree_ = data["condensed_tree"]
            model.mode_ = str(data["mode_"])
            model.knn_backend_ = str(data["knn_backend_"])
            model._tables = PredictionTables.from_dict(dict(data))
            model._pred_index = None
        return model


def phdbscan(X: Any, **params: Any) -> np.ndarray:
    """Functional form: ``PHDBSCAN(**params).fit(X).labels_``."""
    return PHDBSCAN(**params).fit(X).labels_
