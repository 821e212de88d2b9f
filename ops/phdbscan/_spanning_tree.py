"""PHDBSCAN's fit up to the spanning tree: the engine, the kNN lists, core distances, the tree.

:class:`SpanningTreeStep` is a mixin of :class:`ops.phdbscan._estimator.PHDBSCAN` and reads
its parameters. It resolves ``mode="auto"`` and the kNN engine from the number of rows and
the device, searches the kNN lists (cells of :mod:`ops.phdbscan._knn_graph`, or a
:class:`ops.phdbscan._knn.KNNIndex`) and builds the mutual-reachability minimum spanning
tree: exact (float64 lists, certified Borůvka of :mod:`ops.phdbscan._mst`, and the lists'
edges tied with the tree) or approximate (kNN forest and component join).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from ops.phdbscan._component_join import join_components
from ops.phdbscan._knn import KNNIndex, resolve_backend
from ops.phdbscan._knn_forest import knn_forest
from ops.phdbscan._knn_graph import CellIndex, MapChunks, cell_knn
from ops.phdbscan._knn_refine import refine_float64, without_self
from ops.phdbscan._matrix_input import PhaseTimer, from_euclidean, to_euclidean
from ops.phdbscan._mst import default_graph_k, mutual_reachability_mst
from ops.phdbscan._prims_order import tied_list_edges

__all__ = ["AUTO_EXACT_MAX_N", "AUTO_EXACT_MAX_N_GPU", "SpanningTree", "SpanningTreeStep"]

# Above this many points "auto" switches to the approximate tree: the exact tree's searches
# between blob-sized components cost about an all-pairs pass (figures: benchmarks/README.md).
AUTO_EXACT_MAX_N = 20_000
# On a GPU brute force is cheap, but the exact tree's complement searches repeat it; above
# this size the approximate tree (still on exact GPU kNN lists) is used.
AUTO_EXACT_MAX_N_GPU = 2_000_000


class SpanningTree(NamedTuple):
    """What :meth:`SpanningTreeStep._spanning_tree` finds, in Euclidean units."""

    core: np.ndarray  # (n,) core distances
    pred_core: np.ndarray  # (n,) prediction core distances (the point itself counted)
    edges: np.ndarray  # (n - 1, 3) the tree's rows (a, b, weight), in no particular order
    tied: np.ndarray  # (m, 3) the kNN lists' edges weighing as much as a tree edge
    order: np.ndarray | None  # the points by cell, neighbours near each other, if cells ran


def _has_faiss() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


class SpanningTreeStep:
    """Mixin: the step of ``PHDBSCAN.fit`` from validated rows to the spanning tree."""

    mode: str
    device: str
    knn_backend: str | None
    random_state: int | None
    knn_map: MapChunks | None
    alpha: float
    metric: str
    mode_: str
    knn_backend_: str
    _ms_predict: int
    _stats: dict[str, Any]
    _keep_cells: Callable[[CellIndex], None]  # HDBSCANAttributes': the fit's cells for new points

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

    def _spanning_tree(self, X: np.ndarray, ms: int, timer: PhaseTimer) -> SpanningTree:
        """Core distances, prediction cores, the MST, its tied edges and the cells' order.

        The tied edges are the kNN lists' edges weighing as much as a tree edge (exact mode;
        none in approximate mode, whose float32 tree has no ties to honour).

        The MST is of ``max(s(core_a), s(core_b), d(a, b))`` with each core scaled by
        ``s(c) = f^-1(alpha f(c))``, ``f`` the metric's :func:`from_euclidean`: since ``f``
        increases, ``f(weight) = alpha max(f(core_a), f(core_b), f(d) / alpha)``, alpha times
        hdbscan's mutual reachability in the metric, and the tree is the same.
        """
        n = X.shape[0]
        exact = self.mode_ == "exact"
        # exact: a few extra neighbours certify more Borůvka edges without search;
        # approximate: min_samples + 1 is all the core distance needs
        k_query = min(n, default_graph_k(ms, n) + 1 if exact else ms + 1)
        cells: list[CellIndex] = []  # the approximate graph's cells, if any

        def keep(index: CellIndex) -> None:
            cells.append(index)
            self._keep_cells(index)

        if self.knn_backend_ == "cells":
            knn_dist, idx = cell_knn(
                X,
                k_query,
                exact=exact,
                seed=self.random_state or 0,
                map_chunks=self.knn_map,
                on_index=keep,
            )
            knn_is_exact = exact
        else:
            index = self._index(self.knn_backend_).fit(X)
            knn_dist, idx = index.search(X, k_query)
            knn_is_exact = index.exact
        timer("knn")
        # rows by cell: neighbours sit near each other, so the forest and the tree's walk
        # read locally
        order = cells[0].order if cells else None
        alpha = float(self.alpha)
        if exact:
            # cells' exact lists are ranked in float64 already; other engines' in float32
            if knn_is_exact and self.knn_backend_ == "cells":
                dist, idx = without_self(knn_dist, idx)
            else:
                dist, idx = refine_float64(X, idx)
            core = dist[:, ms - 1].copy()
            # hdbscan's prediction core distance counts the point itself
            pred = dist[:, min(max(self._ms_predict - 2, 0), dist.shape[1] - 1)]
            timer("float64")
            scaled = self._scale_core(core, alpha)
            mst = mutual_reachability_mst(
                X,
                dist,
                idx,
                scaled,
                knn_is_exact=knn_is_exact,
                seed=self.random_state or 0,
                stats=self._stats,
            )
            timer("mst")
            tied = tied_list_edges(dist, idx, scaled, mst[:, 2])
            timer("ties")
        else:
            # float32 FAISS distances as they are: the approximate tree has no ties to honour
            core = knn_dist[:, ms].astype(np.float64)
            pred = knn_dist[:, min(max(self._ms_predict - 1, 0), k_query - 1)]
            scaled = self._scale_core(core, alpha)
            forest, comp = knn_forest(idx, knn_dist, scaled, order=order)
            timer("knn_forest")
            self._stats["forest_components"] = n - len(forest)  # a forest: n - edges trees
            mst = np.vstack([forest, join_components(X, scaled, comp, exact=False)])
            tied = np.zeros((0, 3))
        timer("mst")
        if self._ms_predict < 2:
            pred = np.zeros(n)
        return SpanningTree(core, pred.astype(np.float64), mst, tied, order)

    def _scale_core(self, core: np.ndarray, alpha: float) -> np.ndarray:
        if alpha == 1.0:
            return core
        return to_euclidean(alpha * from_euclidean(core, self.metric), self.metric)
