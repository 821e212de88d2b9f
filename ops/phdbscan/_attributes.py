"""hdbscan's fitted-model interface for PHDBSCAN: tree objects, prediction data, new points.

``condensed_tree_``, ``single_linkage_tree_`` and ``minimum_spanning_tree_`` are
``hdbscan.plots`` objects built from PHDBSCAN's raw arrays, as hdbscan builds them from its
own, so ``.plot()``, ``.to_numpy()``, ``.to_pandas()`` and ``.to_networkx()`` are hdbscan's.
``prediction_data_`` is :class:`ops.phdbscan._soft.PredictionData`, whose attributes carry
hdbscan's names, built on first use (hdbscan raises until ``generate_prediction_data``).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
from hdbscan import HDBSCAN
from hdbscan.plots import CondensedTree, MinimumSpanningTree, SingleLinkageTree
from sklearn.utils.validation import check_is_fitted

from ops.phdbscan._condensed_tree import predict_points, single_linkage
from ops.phdbscan._glosh import glosh_scores
from ops.phdbscan._knn import KNNIndex
from ops.phdbscan._knn_graph import CellIndex, wide_cells
from ops.phdbscan._knn_refine import refine_float64
from ops.phdbscan._matrix_input import from_euclidean
from ops.phdbscan._soft import PredictionData

__all__ = ["HDBSCANAttributes"]

# approximate_predict: exact neighbour search up to this many training rows, cells above;
# queries go in blocks of this many so a block's lists (k float64 + int64 each) stay small.
PREDICT_EXACT_MAX_N = 20_000
PREDICT_NPROBE = 8
PREDICT_BLOCK = 65_536


class HDBSCANAttributes:
    """Mixin: the attributes and prediction methods of a fitted ``hdbscan.HDBSCAN``."""

    _raw_data: np.ndarray
    _condensed_tree: np.ndarray
    _min_spanning_tree: np.ndarray
    _pred_core: np.ndarray
    _ms_predict: int
    _outlier_scores: np.ndarray | None
    labels_: np.ndarray
    metric: str
    knn_backend_: str
    random_state: int | None

    def _reset_caches(self) -> None:
        self._prediction_data: PredictionData | None = None
        self._relative_validity: float | None = None
        self._single_linkage_tree: np.ndarray | None = None
        self._pred_index: KNNIndex | CellIndex | None = None

    # -- trees -----------------------------------------------------------------------------
    @property
    def outlier_scores_(self) -> np.ndarray:
        """GLOSH outlier scores of the training points, computed on first use as hdbscan does."""
        check_is_fitted(self, "labels_")
        if self._outlier_scores is None:
            self._outlier_scores = glosh_scores(self._condensed_tree)
        return self._outlier_scores

    @outlier_scores_.setter
    def outlier_scores_(self, scores: np.ndarray | None) -> None:
        self._outlier_scores = scores

    @property
    def condensed_tree_(self) -> CondensedTree:
        """The fit's condensed tree as hdbscan's ``CondensedTree``."""
        check_is_fitted(self, "labels_")
        return CondensedTree(self._condensed_tree, self.labels_)

    @property
    def single_linkage_tree_(self) -> SingleLinkageTree:
        """The MST's merges as hdbscan's ``SingleLinkageTree`` (ties in the tree's row order)."""
        check_is_fitted(self, "labels_")
        if self._single_linkage_tree is None:
            self._single_linkage_tree = single_linkage(self._min_spanning_tree)
        return SingleLinkageTree(self._single_linkage_tree)

    @property
    def minimum_spanning_tree_(self) -> MinimumSpanningTree:
        """The MST as hdbscan's ``MinimumSpanningTree``: ``(a, b, mutual reachability)`` rows.

        Always available (hdbscan needs ``gen_min_span_tree=True``).
        """
        check_is_fitted(self, "labels_")
        return MinimumSpanningTree(self._min_spanning_tree, self._raw_data)

    # -- prediction data, exemplars, validity ---------------------------------------------
    def generate_prediction_data(self) -> None:
        """Build :attr:`prediction_data_` (what soft clustering and prediction need)."""
        check_is_fitted(self, "labels_")
        self._prediction_data = PredictionData(
            self._raw_data,
            self._condensed_tree,
            self.labels_,
            self._pred_core,
            self._neighbours,
            self.metric,
        )

    @property
    def prediction_data_(self) -> PredictionData:
        """The prediction data (hdbscan's attribute names), built on first use."""
        if self._prediction_data is None:
            self.generate_prediction_data()
        assert self._prediction_data is not None
        return self._prediction_data

    @property
    def exemplars_(self) -> list[np.ndarray]:
        """Per selected cluster, the rows of its leaves' points of largest lambda."""
        return self.prediction_data_.exemplars

    @property
    def relative_validity_(self) -> float:
        """Return hdbscan's fast DBCV approximation from the minimum spanning tree."""
        check_is_fitted(self, "labels_")
        if self._relative_validity is None:
            # hdbscan's own formula, read from the attributes it reads
            view = SimpleNamespace(
                _relative_validity=None,
                gen_min_span_tree=True,
                labels_=self.labels_,
                _min_spanning_tree=self._min_spanning_tree,
            )
            self._relative_validity = float(HDBSCAN.relative_validity_.fget(view))  # type: ignore[attr-defined]
        return self._relative_validity

    # hdbscan's own methods: they read only the attributes above (cosine: on the unit rows)
    weighted_cluster_centroid = HDBSCAN.weighted_cluster_centroid
    weighted_cluster_medoid = HDBSCAN.weighted_cluster_medoid
    dbscan_clustering = HDBSCAN.dbscan_clustering

    @property
    def _metric_kwargs(self) -> dict[str, Any]:
        return {}  # hdbscan's extra metric arguments: neither metric here takes any

    # -- new points ------------------------------------------------------------------------
    def _validate(self, X: Any, reset: bool) -> np.ndarray:
        raise NotImplementedError

    def _index(self, backend: str) -> KNNIndex:
        raise NotImplementedError

    def _neighbours(self, X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Find the ``k`` nearest training rows of search-space rows ``X`` (metric distances)."""
        n = self._raw_data.shape[0]
        if self._pred_index is None:
            self._pred_index = self._predict_index(n).fit(self._raw_data)
        k = min(k, n)
        _, candidates = self._pred_index.search(X, k)
        # Re-ranked in float64 from the coordinates (FAISS's float32 expansion blurs
        # near-ties) so they resolve as hdbscan's would; a numba loop over the k
        # candidates, ~10x cheaper than gathering them as a numpy block.
        dist, idx = refine_float64(self._raw_data, candidates, queries=X)
        return from_euclidean(dist, self.metric), idx

    def _keep_cells(self, index: CellIndex) -> None:
        """Keep the fit's k-means cells as the index for new points when they are its cells.

        Above 200k rows the default mode's kNN lists and the search for new points use the
        same cells and 8 probes (:func:`ops.phdbscan._knn_graph.default_cells`,
        :meth:`_predict_index`): kept, and saved with the model, they spare prediction its
        k-means and assignment (~8 s at 1M x 64).
        """
        wanted = self._predict_index(self._raw_data.shape[0])
        if isinstance(wanted, CellIndex) and wanted.same_cells(index):
            self._pred_index = index

    def approximate_predict(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Labels and probabilities of new points without re-clustering.

        Follows ``hdbscan.prediction.approximate_predict``: a new point attaches to its
        training neighbour of smallest mutual reachability and takes the cluster alive at
        that lambda; the tree is not rebuilt, so labels are those of the original fit.

        Parameters
        ----------
        X : array-like (m, n_features)

        Returns
        -------
        labels : ndarray (m,) int64
        probabilities : ndarray (m,) float64
        """
        check_is_fitted(self, "labels_")
        X = self._validate(X, reset=False)
        n = self._raw_data.shape[0]
        if n < 2 or X.shape[0] == 0:
            return np.full(X.shape[0], -1, np.int64), np.zeros(X.shape[0])
        labels = np.empty(X.shape[0], np.int64)
        probabilities = np.empty(X.shape[0], np.float64)
        for start in range(0, X.shape[0], PREDICT_BLOCK):
            block = X[start : start + PREDICT_BLOCK]
            dist, idx = self._neighbours(block, 2 * self._ms_predict)
            labels[start : start + len(block)], probabilities[start : start + len(block)] = (
                predict_points(self._tables, dist, idx, self._pred_core, self._ms_predict)
            )
        return labels, probabilities

    def _predict_index(self, n: int) -> KNNIndex | CellIndex:
        """Exact search on small training sets; cell-grouped search above ``PREDICT_EXACT_MAX_N``.

        A flat search costs every training row per new point (50k distances a point at the
        demo's size); ``2 sqrt(n)`` k-means cells (``n / 500`` past 1M rows: ``wide_cells``),
        each new point searched with the others of its cell against ``PREDICT_NPROBE`` cells around
        it, cost about ``4 sqrt(n)`` (900 at 50k, at most ~4,000)
        at GEMM speed (:class:`ops.phdbscan._knn_graph.CellIndex`; FAISS's IVF scans them per
        query at several times the cost). Only the attachment point must be found, not a full
        kNN list. ``benchmarks/bench_score.py`` prints the share of labels that agree with
        exact search, and both rates (figures: benchmarks/README.md).
        """
        approx = ("ivf", "hnsw", "cells")
        backend = "flat" if self.knn_backend_ in approx else self.knn_backend_
        if backend != "flat" or n <= PREDICT_EXACT_MAX_N:
            return self._index(backend)
        return CellIndex(wide_cells(n), PREDICT_NPROBE, seed=self.random_state or 0)
