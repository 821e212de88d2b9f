"""Minimum spanning forest of a kNN graph under mutual reachability, in numba.

The approximate pHDBSCAN tree (FinDeepBehaviorCluster, arXiv 2101.04285) is the MST of
the kNN graph weighted by ``mr(p, q) = max(core(p), core(q), d(p, q))``, completed by
:mod:`ops.phdbscan._component_join` where the graph is disconnected. Numba Borůvka scans
the lists in place, one pass per round, with a union-find, so no ``n x k`` float64
temporaries and no sort of all ``n k`` edges are needed; an edge found inside a component is
swapped out of its row's live prefix, so later rounds scan only edges still between
components (figures of both choices: benchmarks/README.md).

Ties are broken by ``(weight, min(p, q), max(p, q))``, a strict total order, so Borůvka's
simultaneous choices never close a cycle and the forest is minimal.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["knn_forest"]


@numba.njit(cache=True)
def _find(parent: np.ndarray, x: int) -> int:
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


@numba.njit(cache=True)
def _before(w: float, p: int, q: int, bw: float, bp: int, bq: int, ids: np.ndarray) -> bool:
    """Whether edge ``(p, q)`` of weight ``w`` comes before the best one, ``(bp, bq)``.

    Ties go by the edges' ``(min, max)`` row ids in the caller's numbering (``ids``), read
    only on a tie: the order, hence the forest, is the same whatever order the rows are in.
    """
    if w != bw:
        return w < bw
    if bp < 0:  # no best yet, and w is infinite: nothing to join by
        return False
    a, b = min(ids[p], ids[q]), max(ids[p], ids[q])
    ba, bb = min(ids[bp], ids[bq]), max(ids[bp], ids[bq])
    if a != ba:
        return a < ba
    return b < bb


@numba.njit(cache=True)
def _reordered(
    knn_idx: np.ndarray,
    knn_dist: np.ndarray,
    order: np.ndarray,
    idx: np.ndarray,
    weight: np.ndarray,
) -> None:
    """Fill ``idx`` and ``weight`` with the lists of rows ``order``, renumbered by rank."""
    n, k = knn_idx.shape
    rank = np.empty(n, idx.dtype)
    for r in range(n):
        rank[order[r]] = r
    for r in range(n):
        p = order[r]
        for j in range(k):
            q = knn_idx[p, j]
            idx[r, j] = rank[q] if q >= 0 else -1
            weight[r, j] = knn_dist[p, j]


@numba.njit(cache=True)
def _forest(
    idx: np.ndarray, weight: np.ndarray, core: np.ndarray, ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n, k = idx.shape
    # ids in idx's type (int32 below 2**31 rows): at 1M rows the per-row arrays then fit the
    # last-level cache, and the scans' random reads of comp are most of the forest's time
    parent = np.arange(n).astype(idx.dtype)
    eu = np.empty(max(n - 1, 0), np.int64)
    ev = np.empty(max(n - 1, 0), np.int64)
    ew = np.empty(max(n - 1, 0), np.float64)
    comp = parent.copy()
    bw = np.empty(n, np.float64)
    bp = np.empty(n, idx.dtype)
    bq = np.empty(n, idx.dtype)
    ne = 0
    live = np.full(n, k, np.int64)  # row p's candidates are idx[p, :live[p]]
    first = True
    while True:
        for p in range(n):
            comp[p] = _find(parent, p)
            bw[p] = np.inf
            bp[p] = -1
            bq[p] = -1
        for p in range(n):
            cp = comp[p]
            j, m = 0, live[p]
            while j < m:
                q = idx[p, j]
                if q < 0 or comp[q] == cp:
                    # inside p's component for good (components only merge): drop it
                    m -= 1
                    idx[p, j], weight[p, j] = idx[p, m], weight[p, m]
                    continue
                cq = comp[q]
                if first:  # the distance becomes the edge's weight: no core reads after
                    weight[p, j] = max(core[p], core[q], np.float64(weight[p, j]))
                w = np.float64(weight[p, j])
                if _before(w, p, q, bw[cp], bp[cp], bq[cp], ids):
                    bw[cp], bp[cp], bq[cp] = w, p, q
                if _before(w, p, q, bw[cq], bp[cq], bq[cq], ids):
                    bw[cq], bp[cq], bq[cq] = w, p, q
                j += 1
            live[p] = m
        first = False
        added = 0
        for c in range(n):
            if comp[c] != c or bp[c] < 0:
                continue
            ra, rb = _find(parent, bp[c]), _find(parent, bq[c])
            if ra == rb:
                continue
            parent[ra] = rb
            eu[ne], ev[ne], ew[ne] = ids[bp[c]], ids[bq[c]], bw[c]
            ne += 1
            added += 1
        if added == 0:
            break
    for p in range(n):
        comp[p] = ids[_find(parent, p)]
    return eu[:ne], ev[:ne], ew[:ne], comp


def knn_forest(
    knn_idx: np.ndarray,
    knn_dist: np.ndarray,
    core: np.ndarray,
    order: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Minimum spanning forest of the symmetrised kNN graph under mutual reachability.

    Parameters
    ----------
    knn_idx : ndarray (n, k) int
        Neighbour ids, ``-1`` where missing; a row's own id is ignored.
    knn_dist : ndarray (n, k) float32 or float64
        Distances matching ``knn_idx``.
    core : ndarray (n,) float64
        Core distances.
    order : ndarray (n,) int, optional
        A permutation of the rows that keeps neighbours near each other, such as the rows
        sorted by k-means cell (``CellIndex.order``). The forest is searched on the rows in
        this order: its scans then read the per-row arrays near where they are, not at
        random (at 3M rows the scans took 4.2 s, 1.3-1.5 s in cell order, plus 0.4-1.1 s to
        reorder the lists; benchmarks/README.md). Same result with or without it.

    Returns
    -------
    edges : ndarray (m, 3) float64
        ``(a, b, weight)`` rows, ``m = n - (number of components)``.
    comp : ndarray (n,) int64
        Component label (a representative row id) of every row.
    """
    n, k = knn_idx.shape
    core = np.ascontiguousarray(core, dtype=np.float64)
    # the lists become the edges' weights in place: float32 holds them when it holds the
    # cores (max of float32 values), and halves what the scans read
    exact32 = knn_dist.dtype == np.float32 and np.array_equal(core.astype(np.float32), core)
    idx = np.empty((n, k), np.int32 if n < 2**31 else np.int64)
    weight = np.empty((n, k), np.float32 if exact32 else np.float64)
    ids = np.arange(n, dtype=idx.dtype) if order is None else order.astype(idx.dtype)
    _reordered(knn_idx, knn_dist, ids, idx, weight)
    eu, ev, ew, comp = _forest(idx, weight, core[ids], ids)
    labels = np.empty(n, np.int64)
    labels[ids] = comp
    return np.column_stack([eu, ev, ew]).astype(np.float64), labels
