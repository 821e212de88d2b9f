"""Minimum spanning tree of the HDBSCAN* mutual-reachability graph, seeded by a kNN graph.

HDBSCAN* (Campello, Moulavi & Sander 2013; Campello et al. 2015) needs an MST of the
*complete* mutual-reachability graph ``mr(a, b) = max(core(a), core(b), d(a, b))``. A kNN
graph alone does not contain that MST in general and may even be disconnected, so this
module runs Borůvka's algorithm where each component's lightest outgoing edge comes from
the kNN lists when that can be *certified*, and from an exact pruned search otherwise:

* for a point ``p`` whose exact kNN list ends at distance ``d_k(p)``, every point outside
  the list has ``mr >= b(p) = max(core(p), d_k(p))``; if the best listed edge leaving
  ``p``'s component is no heavier than ``b(p)`` for every ``p`` in it, the kNN candidate is
  the true lightest edge (cut property);
* when the uncertified points lie in a few (cluster-sized) components, each point's
  distance to every other component is bounded from below by projections on the lines
  between component centroids (:mod:`ops.phdbscan._projection_bound`); a few points of
  lowest bound per component are searched first against the component's complement (FAISS
  flat), and their edges prune the rest;
* what remains is searched exactly over a one-level partition of the data (k-means cells
  with centroid, radius and minimum core distance), pruning a cell pair whenever
  ``max(core_min_a, core_min_b, |c_a - c_b| - r_a - r_b)`` cannot beat the best edge
  already known. This is the cell analogue of the dual-tree Borůvka of McInnes & Healy
  (2017) with FAISS-style flat blocks instead of kd-tree leaves.

Borůvka with ties is still correct when each component adds one lightest outgoing edge
and cycle-closing edges are dropped, which is what the per-round Kruskal over the chosen
edges does. The approximate tree (the FinDeepBehaviorCluster trade-off) is built elsewhere:
:mod:`ops.phdbscan._knn_forest` and :mod:`ops.phdbscan._component_join`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

from ops.phdbscan._boruvka_edges import (
    lightest_leaving,
    mutual_reachability_lists,
    per_component_best,
)
from ops.phdbscan._cell_partition import (
    CellPartition,
    brute_search,
    cell_round,
    partition_cells,
)
from ops.phdbscan._projection_bound import projection_bounds, projection_groups

__all__ = ["default_graph_k", "mutual_reachability_mst"]


def _lowest_per_component(
    pts: np.ndarray, comp: np.ndarray, score: np.ndarray, size: int
) -> np.ndarray:
    """Per component, the ``size`` points of ``pts`` with the lowest ``score``."""
    pc = comp[pts]
    order = np.lexsort((score, pc))
    sorted_pc = pc[order]
    starts = np.r_[0, np.flatnonzero(sorted_pc[1:] != sorted_pc[:-1]) + 1]
    rank = np.empty(len(pts), np.int64)
    rank[order] = np.arange(len(pts)) - np.repeat(starts, np.diff(np.r_[starts, len(pts)]))
    return pts[rank < size]


def _complement_search(
    X: np.ndarray, pts: np.ndarray, comp: np.ndarray, core: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Find the ``k`` nearest points of other components for each of ``pts``, exactly.

    Brute force: FAISS flat, or torch on a GPU.

    Returns ``(idx, mr, radius)``: neighbour ids (``-1`` padded), their float64 mutual
    reachability, and a lower bound on the distance to any unlisted point of another
    component (``inf`` when the list holds all of them).
    """
    out_q = np.full((len(pts), k), -1, np.int64)
    out_w = np.full((len(pts), k), np.inf)
    radius = np.full(len(pts), np.inf)
    n = len(comp)
    # Rows sorted by component: the complement of one is two contiguous blocks, searched
    # where they lie, with no copy of the rows outside it per component.
    by_comp = np.argsort(comp, kind="stable")
    X_sorted = np.ascontiguousarray(X[by_comp], dtype=np.float32)
    bounds = np.searchsorted(comp[by_comp], np.arange(int(comp.max()) + 2))
    pc = comp[pts]
    for c in np.unique(pc):
        sel = np.flatnonzero(pc == c)
        outside = n - (bounds[c + 1] - bounds[c])
        kk = min(k, outside)
        P = X[pts[sel]]
        Q = np.ascontiguousarray(P, dtype=np.float32)
        found_d, found_q = [], []
        for first, last in ((0, bounds[c]), (bounds[c + 1], n)):
            if last > first:
                d32, loc = brute_search(X_sorted[first:last], Q, min(kk, last - first))
                found_d.append(d32)
                found_q.append(by_comp[first + loc])
        # the k nearest of the complement are the k nearest of the two blocks' lists
        d32, q = np.hstack(found_d), np.hstack(found_q)
        keep = np.argsort(d32, axis=1, kind="stable")[:, :kk]
        d32, q = np.take_along_axis(d32, keep, 1), np.take_along_axis(q, keep, 1)
        diff = X[q].astype(np.float64) - P[:, None, :].astype(np.float64)
        d = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
        out_q[sel, :kk] = q
        out_w[sel, :kk] = np.maximum(np.maximum(d, core[q]), core[pts[sel]][:, None])
        if kk < outside:
            # float32 list radius, shrunk by a relative 1e-5 so rounding cannot certify
            radius[sel] = d32[:, -1].astype(np.float64) * (1 - 1e-5)
    return out_q, out_w, radius


class _Boruvka:
    """Borůvka over the mutual-reachability graph; one method per step of a round.

    State across rounds: the components ``comp``, each point's certification ``bound`` (no
    edge leaving it is lighter), the complement lists already searched, and the accepted
    edges. State of one round: each point's best known outgoing edge ``best_w``/``best_q``,
    lowered by each search step.
    """

    def __init__(
        self,
        X: np.ndarray,
        knn_dist: np.ndarray,
        knn_idx: np.ndarray,
        core: np.ndarray,
        knn_is_exact: bool,
        n_cells: int | None,
        seed: int,
        max_complement_comps: int,
        complement_k: int,
        seed_size: int,
    ) -> None:
        n, k = knn_idx.shape
        self.X, self.core, self.knn_idx = X, core, knn_idx
        self.n_cells, self.seed = n_cells, seed
        self.max_complement_comps, self.complement_k = max_complement_comps, complement_k
        self.seed_size = seed_size
        self.rows = np.arange(n)
        self.W = mutual_reachability_lists(knn_dist, knn_idx, core)
        # b(p): lower bound on mr to any point not in p's list
        if k >= n - 1 or not knn_is_exact:
            last = np.full(n, np.inf if k >= n - 1 else -np.inf)
        else:
            last = knn_dist[:, -1]
        self.bound = np.maximum(core, last)
        self.comp = np.arange(n)
        self.ncomp = n
        self.edges: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.cells: CellPartition | None = None
        self.info: dict[str, Any] = {"rounds": 0, "searched": [], "projection_pruned": 0}
        # lists of nearest *other-component* points found by complement searches; they stay
        # valid (and their radius stays a bound) as components only grow
        self.ext_q = np.full((0, complement_k), -1, np.int64)  # n x k after the first search
        self.ext_w = np.full((0, complement_k), np.inf)
        self.has_ext = np.zeros(n, bool)
        # projection groups; the components of the first round with few enough stay the groups
        self.groups, self.whole_groups = self.comp, False
        self.best_w = np.full(n, np.inf)
        self.best_q = np.full(n, -1, np.int64)

    def run(self) -> np.ndarray:
        """Merge components round by round until one is left; return the MST rows."""
        while self.ncomp > 1:
            self.info["rounds"] += 1
            self.listed_edges()
            pts = self.uncertified()
            self.info["searched"].append(len(pts))
            if len(pts):
                if len(np.unique(self.comp[pts])) <= self.max_complement_comps:
                    pts = self.search_complements(pts)
                if len(pts):
                    self.search_cells(pts)
            self.merge()
        u, v, w = (np.concatenate(part) for part in zip(*self.edges, strict=True))
        return np.column_stack([u, v, w]).astype(np.float64)

    def listed_edges(self) -> None:
        """Start the round from each point's lightest listed edge leaving its component."""
        comp = self.comp
        self.best_w, self.best_q = lightest_leaving(self.W, self.knn_idx, comp)
        if self.has_ext.any():
            e = np.flatnonzero(self.has_ext)
            same = comp[np.maximum(self.ext_q[e], 0)] == comp[e][:, None]
            self._lower(e, self.ext_q[e], np.where(same, np.inf, self.ext_w[e]))

    def uncertified(self) -> np.ndarray:
        """Points whose bound does not prove their component's best edge lightest."""
        bw, _, _ = self._component_best()
        return np.flatnonzero(self.bound < bw[self.comp])

    def search_complements(self, pts: np.ndarray) -> np.ndarray:
        """Search few (typically cluster-sized) components against their complements.

        In high dimension no spatial bound separates such components (distances concentrate),
        so each component's points are searched against everything outside it with FAISS and
        certified from the list radius; the projection bound prunes most of them, the most
        promising points going first so that their edges let it prune the rest. Returns the
        points still uncertified.
        """
        comp = self.comp
        if not self.whole_groups:  # once every component is a group, keep those
            self.groups = projection_groups(comp, pts, self.max_complement_comps)
            self.whole_groups = self.ncomp <= self.max_complement_comps
        self.bound[pts] = np.maximum(
            self.bound[pts], projection_bounds(self.X, pts, comp, self.groups)
        )
        first = _lowest_per_component(pts, comp, self.bound[pts], self.seed_size)
        self._complement_round(first)
        bw, _, _ = self._component_best()
        rest = np.setdiff1d(pts, first, assume_unique=True)
        rest = rest[self.bound[rest] < bw[comp[rest]]]
        self._complement_round(rest)
        self.info["projection_pruned"] += len(pts) - len(first) - len(rest)
        pts = np.r_[first, rest]
        return pts[self.best_w[pts] > self.bound[pts]]

    def search_cells(self, pts: np.ndarray) -> None:
        """Search what remains exactly over the cell partition (built on first need).

        While fewer points than the partition would have cells are searched, a partition of
        one cell serves: every row is searched, which costs less than the k-means passes that
        build the cells (the first round often leaves a few dozen points: 0.32 against 0.10 s
        at 100k x 32).
        """
        n_cells = self.n_cells or partition_cells(len(self.rows))
        wanted = n_cells if len(pts) > n_cells else 1
        if self.cells is None or wanted > self.cells.L:
            self.cells = CellPartition(self.X, self.core, n_cells=wanted, seed=self.seed)
        w, q = cell_round(
            self.cells, pts, self.comp, self.core, self.best_w, self.best_q, self.ncomp
        )
        self.best_w[pts], self.best_q[pts] = w, q

    def merge(self) -> None:
        """Accept each component's lightest edge; Kruskal over them drops tie cycles."""
        bw, bu, bv = self._component_best()
        has = bu >= 0
        if not has.any():
            raise RuntimeError("Borůvka round found no outgoing edge; graph search failed")
        cu, cv, cw = bu[has], bv[has], bw[has]
        a, b = self.comp[cu], self.comp[cv]
        # ranks keep zero weights (duplicates) from vanishing in scipy's sparse MST
        rank = np.empty(len(cw))
        rank[np.lexsort((np.minimum(cu, cv), cw))] = np.arange(1, len(cw) + 1)
        g = coo_matrix((rank, (a, b)), shape=(self.ncomp, self.ncomp)).tocsr()
        forest = minimum_spanning_tree(g).tocoo()
        # map accepted (comp, comp, rank) back to edges
        keep_rank = forest.data.astype(np.int64)
        pos = np.empty(len(cw) + 1, np.int64)
        pos[rank.astype(np.int64)] = np.arange(len(cw))
        sel = pos[keep_rank]
        self.edges.append((cu[sel], cv[sel], cw[sel]))
        _, lab = connected_components(forest, directed=False)
        self.comp = lab[self.comp]
        self.ncomp = int(lab.max()) + 1

    def _component_best(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return per_component_best(self.comp, self.ncomp, self.best_w, self.rows, self.best_q)

    def _complement_round(self, pts: np.ndarray) -> None:
        """Search ``pts`` against their complements; keep the lists, raise the bounds."""
        if not len(pts):
            return
        lq, lw, radius = _complement_search(self.X, pts, self.comp, self.core, self.complement_k)
        if self.ext_q.shape[0] == 0:
            self.ext_q = np.full((len(self.rows), lq.shape[1]), -1, np.int64)
            self.ext_w = np.full((len(self.rows), lq.shape[1]), np.inf)
        self.ext_q[pts], self.ext_w[pts] = lq, lw
        self.has_ext[pts] = True
        self.bound[pts] = np.maximum(self.bound[pts], radius)
        self._lower(pts, lq, lw)

    def _lower(self, pts: np.ndarray, lq: np.ndarray, lw: np.ndarray) -> None:
        """Where a list ``(lq, lw)`` of ``pts`` holds a lighter edge, take it."""
        j = lw.argmin(1)
        w = lw[np.arange(len(pts)), j]
        better = w < self.best_w[pts]
        self.best_w[pts[better]] = w[better]
        self.best_q[pts[better]] = lq[np.arange(len(pts)), j][better]


def mutual_reachability_mst(
    X: np.ndarray,
    knn_dist: np.ndarray,
    knn_idx: np.ndarray,
    core: np.ndarray,
    *,
    knn_is_exact: bool = True,
    n_cells: int | None = None,
    seed: int = 0,
    stats: dict[str, Any] | None = None,
    max_complement_comps: int = 64,
    complement_k: int = 16,
    seed_size: int = 16,
) -> np.ndarray:
    """Borůvka MST of the complete mutual-reachability graph.

    Parameters
    ----------
    X : ndarray (n, d)
    knn_dist, knn_idx : ndarray (n, k)
        Neighbours of each point *excluding itself*
        (:func:`ops.phdbscan._knn_refine.refine_float64`), ascending, float64 distances,
        ``-1`` for missing entries.
    core : ndarray (n,) float64
        Core distances.
    knn_is_exact : bool
        Whether the lists are exact kNN; if not, certification cannot use list radii and
        every uncertain point is searched.
    n_cells, seed
        :class:`CellPartition` settings.
    stats : dict, optional
        Filled with per-round diagnostics (rounds, searched points).
    max_complement_comps : int
        Rounds whose uncertain points span at most this many components search each
        component against its complement (FAISS flat) instead of the cell partition.
    complement_k : int
        List length of complement searches; certification falls back to cells if short.
    seed_size : int
        Per component, how many points of lowest projection bound are searched first; their
        edges prune the rest (a few suffice; figures: benchmarks/README.md).

    Returns
    -------
    mst : ndarray (n - 1, 3) float64
        Rows ``(a, b, weight)`` in no particular order.
    """
    n = X.shape[0]
    if n <= 1:
        return np.zeros((0, 3))
    boruvka = _Boruvka(
        X,
        knn_dist,
        knn_idx,
        core,
        knn_is_exact,
        n_cells,
        seed,
        max_complement_comps,
        complement_k,
        seed_size,
    )
    mst = boruvka.run()
    if stats is not None:
        stats.update(boruvka.info)
    if mst.shape[0] != n - 1:
        raise RuntimeError(f"MST has {mst.shape[0]} edges, expected {n - 1}")
    return mst


def default_graph_k(min_samples: int, n: int) -> int:
    """Choose the kNN list length (self included) for the seed graph.

    ``min_samples + 1`` is the minimum for core distances; at least 16, since lists shorter
    than that certify few Borůvka edges for small ``min_samples``. Longer lists stopped
    paying once the projection bound pruned the searches between blobs (figures:
    benchmarks/README.md).
    """
    return int(min(n, max(min_samples + 1, 16)))
