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
def _less(w: float, a: int, b: int, bw: float, ba: int, bb: int) -> bool:
    if w != bw:
        return w < bw
    if a != ba:
        return a < ba
    return b < bb


@numba.njit(cache=True)
def _forest(
    idx: np.ndarray, dist: np.ndarray, core: np.ndarray
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
    ba = np.empty(n, idx.dtype)
    bb = np.empty(n, idx.dtype)
    ne = 0
    live = np.full(n, k, np.int64)  # row p's candidates are idx[p, :live[p]]
    while True:
        for p in range(n):
            comp[p] = _find(parent, p)
            bw[p] = np.inf
            ba[p] = -1
            bb[p] = -1
        for p in range(n):
            cp = comp[p]
            j, m = 0, live[p]
            while j < m:
                q = idx[p, j]
                if q < 0 or comp[q] == cp:
                    # inside p's component for good (components only merge): drop it
                    m -= 1
                    idx[p, j], dist[p, j] = idx[p, m], dist[p, m]
                    continue
                cq = comp[q]
                w = max(core[p], core[q], np.float64(dist[p, j]))
                a, b = min(p, q), max(p, q)
                if _less(w, a, b, bw[cp], ba[cp], bb[cp]):
                    bw[cp], ba[cp], bb[cp] = w, a, b
                if _less(w, a, b, bw[cq], ba[cq], bb[cq]):
                    bw[cq], ba[cq], bb[cq] = w, a, b
                j += 1
            live[p] = m
        added = 0
        for c in range(n):
            if comp[c] != c or ba[c] < 0:
                continue
            ra, rb = _find(parent, ba[c]), _find(parent, bb[c])
            if ra == rb:
                continue
            parent[ra] = rb
            eu[ne], ev[ne], ew[ne] = ba[c], bb[c], bw[c]
            ne += 1
            added += 1
        if added == 0:
            break
    for p in range(n):
        comp[p] = _find(parent, p)
    return eu[:ne], ev[:ne], ew[:ne], comp


def knn_forest(
    knn_idx: np.ndarray, knn_dist: np.ndarray, core: np.ndarray
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

    Returns
    -------
    edges : ndarray (m, 3) float64
        ``(a, b, weight)`` rows, ``m = n - (number of components)``.
    comp : ndarray (n,) int64
        Component label (a representative row id) of every row.
    """
    # private copies: rows are compacted in place
    idx = np.array(knn_idx, dtype=np.int32 if len(knn_idx) < 2**31 else np.int64, order="C")
    dist = np.array(
        knn_dist, dtype=np.float32 if knn_dist.dtype == np.float32 else np.float64, order="C"
    )
    eu, ev, ew, comp = _forest(idx, dist, np.ascontiguousarray(core, dtype=np.float64))
    return np.column_stack([eu, ev, ew]).astype(np.float64), comp.astype(np.int64)
