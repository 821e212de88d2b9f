"""Exact "lightest edge to another component" searches over a one-level cell partition.

The exact half of the Borůvka MST in :mod:`ops.phdbscan._mst`: k-means cells carry a centroid,
radius and minimum core distance, so a cell pair is pruned whenever
``max(core_min_a, core_min_b, |c_a - c_b| - r_a - r_b)`` cannot beat the best edge already
known: the cell analogue of the dual-tree Borůvka of McInnes & Healy (2017, "Accelerated
Hierarchical Density Based Clustering"), with flat distance blocks instead of kd-tree leaves.
"""

from __future__ import annotations

import numpy as np

from ops.phdbscan._knn import KNNIndex
from ops.phdbscan._knn_graph import _gemm_search

__all__ = ["CellPartition", "brute_index", "brute_search", "cell_round", "partition_cells"]


def brute_index(X: np.ndarray) -> KNNIndex:
    """Exact index for internal searches: FAISS (GPU if it has one) or, without faiss, torch.

    torch is not even imported when faiss is present: its OpenMP runtime next to FAISS's
    slowed small FAISS searches ten-fold on a 2-core machine.
    """
    try:
        import faiss

        backend = "faiss_gpu" if faiss.get_num_gpus() > 0 else "flat"
    except ImportError:
        backend = "torch"
    return KNNIndex(backend).fit(X)  # type: ignore[arg-type]


def brute_search(X: np.ndarray, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``k`` nearest rows of ``X`` for each row of ``Q``, as ``brute_index(X).search``.

    On a CPU, FAISS searches ``X`` where it lies (``faiss.knn``, the function an
    ``IndexFlatL2`` calls) instead of copying it into an index first: the exact tree's
    complement searches used to copy ~100 times 100k rows at 100k x 32.
    """
    try:
        import faiss
    except ImportError:
        return brute_index(X).search(Q, k)
    if faiss.get_num_gpus() > 0:
        return brute_index(X).search(Q, k)
    Q, X = np.ascontiguousarray(Q, np.float32), np.ascontiguousarray(X, np.float32)
    D, idx = faiss.knn(Q, X, int(k))
    D = np.sqrt(np.maximum(D, 0.0, out=D), out=D)
    return np.where(idx < 0, np.float32(np.inf), D), idx.astype(np.int64, copy=False)


_BLOCK = 1 << 22  # float64 entries per distance block (32 MiB)


def partition_cells(n: int) -> int:
    """Default cell count of a :class:`CellPartition` of ``n`` rows: ``n / 128`` in [1, 4096].

    Small cells prune better, more cells cost more Python-level iterations; 128 rows a cell
    balanced both at 100k x 32. Below 4,096 rows, one cell.
    """
    return 1 if n < 4096 else int(np.clip(n // 128, 1, 4096))


class CellPartition:
    """One-level spatial partition used for exact "nearest other component" searches.

    Parameters
    ----------
    X : ndarray (n, d)
    core : ndarray (n,) float64
        Core distances (used for per-cell lower bounds).
    n_cells : int, optional
        Default :func:`partition_cells`; with one cell, every search is brute force.
    seed : int
    """

    def __init__(
        self, X: np.ndarray, core: np.ndarray, n_cells: int | None = None, seed: int = 0
    ) -> None:
        n, d = X.shape
        self.X = X
        L = n_cells or partition_cells(n)
        assign = _lloyd_cells(X, L, seed) if L > 1 else np.zeros(n, np.int64)
        order = np.argsort(assign, kind="stable")
        counts = np.bincount(assign, minlength=L)
        starts = np.concatenate([[0], np.cumsum(counts)])
        nz = counts > 0
        # everything per cell is reduced over the cell-contiguous rows, in row order
        Xo = X[order].astype(np.float64)  # also the block gathers' copy
        first_rows = starts[:-1][nz]
        cent = np.zeros((L, d), np.float64)
        cent[nz] = np.add.reduceat(Xo, first_rows, axis=0) / counts[nz, None]
        assign_o = assign[order]
        dist_to_cent = np.linalg.norm(Xo - cent[assign_o], axis=1)
        rad = np.zeros(L)
        rad[nz] = np.maximum.reduceat(dist_to_cent, first_rows)
        core_o = core[order]
        mincore = np.full(L, np.inf)
        mincore[nz] = np.minimum.reduceat(core_o, first_rows)
        # representative = member closest to its centroid (the first such); seeds upper bounds
        rep = np.full(L, -1, np.int64)
        nearest = np.lexsort((dist_to_cent, assign_o))
        first = np.r_[True, assign_o[nearest][1:] != assign_o[nearest][:-1]]
        rep[assign_o[nearest][first]] = order[nearest[first]]
        cn = (cent * cent).sum(1)
        self.cent_dist = np.sqrt(np.maximum(cn[:, None] + cn[None, :] - 2 * cent @ cent.T, 0))
        self.assign, self.order, self.starts = assign, order, starts
        self.cent, self.rad, self.mincore, self.rep, self.nz = cent, rad, mincore, rep, nz
        self.L = L
        self.Xo = Xo
        self.Xo_sq = (Xo * Xo).sum(1)
        self.core_o = core_o

    def members(self, cells: np.ndarray) -> np.ndarray:
        """Positions (in cell order) of all members of ``cells``."""
        if len(cells) == 0:
            return np.zeros(0, np.int64)
        s, e = self.starts[cells], self.starts[cells + 1]
        lens = e - s
        offs = np.repeat(s - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)
        return np.arange(lens.sum()) + offs

    def upper_bounds(
        self, pts: np.ndarray, comp: np.ndarray, core: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Best edge from each point in ``pts`` to any cell representative of another component."""
        reps = self.rep[self.rep >= 0]
        R = self.X[reps].astype(np.float64)
        best_w = np.full(len(pts), np.inf)
        best_q = np.full(len(pts), -1, np.int64)
        step = max(1, _BLOCK // max(1, len(reps)))
        for s in range(0, len(pts), step):
            p = pts[s : s + step]
            P = self.X[p].astype(np.float64)
            d2 = (P * P).sum(1)[:, None] + (R * R).sum(1)[None, :] - 2 * P @ R.T
            mr = np.maximum(np.sqrt(np.maximum(d2, 0)), core[reps][None, :])
            mr = np.maximum(mr, core[p][:, None])
            mr[comp[p][:, None] == comp[reps][None, :]] = np.inf
            j = mr.argmin(1)
            best_w[s : s + step] = mr[np.arange(len(p)), j]
            best_q[s : s + step] = reps[j]
        best_q[~np.isfinite(best_w)] = -1
        return best_w, best_q

    def search(
        self, pts: np.ndarray, thresh: np.ndarray, comp: np.ndarray, core: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact lightest mutual-reachability edge from each of ``pts`` to another component.

        Only edges lighter than ``thresh`` (per point) are looked for; the result is
        ``(inf, -1)`` where none exists.
        """
        best_w = np.full(len(pts), np.inf)
        best_q = np.full(len(pts), -1, np.int64)
        if len(pts) == 0:
            return best_w, best_q
        comp_o = comp[self.order]
        # a cell is "pure" when all its members share one component: pure-pure pairs of the
        # same component can hold no outgoing edge and are skipped wholesale
        cmin = np.minimum.reduceat(comp_o, self.starts[:-1][self.nz])
        cmax = np.maximum.reduceat(comp_o, self.starts[:-1][self.nz])
        pure = np.full(self.L, -2, np.int64)
        pure[self.nz] = np.where(cmin == cmax, cmin, -1)
        qcell = self.assign[pts]
        by_cell = np.argsort(qcell, kind="stable")
        qcells, qstart = np.unique(qcell[by_cell], return_index=True)
        qstart = np.r_[qstart, len(pts)]
        for a_i, a in enumerate(qcells):
            sel = by_cell[qstart[a_i] : qstart[a_i + 1]]
            p = pts[sel]
            t = thresh[sel]
            tmax = t.max()
            cp = comp[p]
            lb = np.maximum(self.cent_dist[a] - self.rad[a] - self.rad, self.mincore)
            lb = np.maximum(lb, core[p].min())
            ok = (lb < tmax) & self.nz
            if cp.min() == cp.max():
                ok &= pure != cp[0]
            cells = np.flatnonzero(ok)
            if len(cells) == 0:
                continue
            tgt = self.members(cells)
            tgt = tgt[self.core_o[tgt] < tmax]
            if len(tgt) == 0:
                continue
            P = self.X[p].astype(np.float64)
            psq = (P * P).sum(1)
            step = max(1, _BLOCK // len(p))
            for s in range(0, len(tgt), step):
                tb = tgt[s : s + step]
                d2 = psq[:, None] + self.Xo_sq[tb][None, :] - 2 * P @ self.Xo[tb].T
                mr = np.maximum(np.sqrt(np.maximum(d2, 0)), self.core_o[tb][None, :])
                mr = np.maximum(mr, core[p][:, None])
                mr[cp[:, None] == comp_o[tb][None, :]] = np.inf
                j = mr.argmin(1)
                w = mr[np.arange(len(p)), j]
                better = w < best_w[sel]
                best_w[sel[better]] = w[better]
                best_q[sel[better]] = self.order[tb[j[better]]]
        best_q[~np.isfinite(best_w)] = -1
        # the block distances used the |p|^2+|q|^2-2pq identity; recompute the winners directly
        ok = best_q >= 0
        if ok.any():
            dd = np.linalg.norm(
                self.X[pts[ok]].astype(np.float64) - self.X[best_q[ok]].astype(np.float64), axis=1
            )
            best_w[ok] = np.maximum(np.maximum(dd, core[pts[ok]]), core[best_q[ok]])
        return best_w, best_q


def _lloyd_cells(X: np.ndarray, L: int, seed: int, n_iter: int = 2) -> np.ndarray:
    """Cell id per row from a few Lloyd steps seeded by random rows.

    Cells only need to be compact, not optimal; ``faiss.Kmeans`` spent most of its time in
    OpenMP start-up on small inputs and in 8+ iterations on large ones. The approximate
    graph's cells (:func:`ops.phdbscan._knn_graph._centroids`) keep ``faiss.Kmeans``: they
    need centroids only, trained on a bounded sample, while these cells need every row's id.
    """
    rng = np.random.default_rng(seed)
    X32 = np.ascontiguousarray(X, dtype=np.float32)
    cent = X32[rng.choice(X.shape[0], L, replace=False)]
    for it in range(n_iter + 1):
        # GEMM distances: a cell needs only to be compact, so their rounding costs nothing,
        # and they are faster than the per-pair loop here (benchmarks/README.md)
        with _gemm_search():
            assign = brute_index(cent).search(X32, 1)[1][:, 0]
        if it == n_iter:
            break
        order = np.argsort(assign, kind="stable")
        counts = np.bincount(assign, minlength=L)
        nz = counts > 0
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[nz]
        sums = np.add.reduceat(X32[order].astype(np.float64), starts, axis=0)
        cent = cent.copy()
        cent[nz] = (sums / counts[nz, None]).astype(np.float32)
    return assign.astype(np.int64)


def cell_round(
    cells: CellPartition,
    pts: np.ndarray,
    comp: np.ndarray,
    core: np.ndarray,
    best_w: np.ndarray,
    best_q: np.ndarray,
    ncomp: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact cell search for ``pts``: their best edges given the known ``best_w``/``best_q``.

    Returns
    -------
    w, q : ndarray (len(pts),)
        Each point's lightest edge leaving its component, at least as light as the known one.
    """
    # the component's current best edge is the bound every member must beat
    cb = np.full(ncomp, np.inf)
    np.minimum.at(cb, comp, best_w)
    thresh = cb[comp[pts]]
    w, q = best_w[pts].copy(), best_q[pts].copy()
    inf_pts = ~np.isfinite(thresh)
    if inf_pts.any():
        ub_w, ub_q = cells.upper_bounds(pts[inf_pts], comp, core)
        cb2 = np.full(ncomp, np.inf)
        np.minimum.at(cb2, comp[pts[inf_pts]], ub_w)
        thresh[inf_pts] = cb2[comp[pts[inf_pts]]]
        better = ub_w < w[inf_pts]
        w[np.flatnonzero(inf_pts)[better]] = ub_w[better]
        q[np.flatnonzero(inf_pts)[better]] = ub_q[better]
    # search strictly below the bound, but an edge equal to it must still be found when
    # nothing else was: nextafter keeps that edge eligible
    sw, sq = cells.search(pts, np.nextafter(thresh, np.inf), comp, core)
    better = sw < w
    w[better] = sw[better]
    q[better] = sq[better]
    return w, q
