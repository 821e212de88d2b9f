"""Borůvka's per-point and per-component lightest edges, as loops over the kNN lists.

Each round of :mod:`ops.phdbscan._mst` starts from every point's lightest listed edge
leaving its component and ends with every component's lightest edge. In numpy both built
``n x k`` (or ``2n``) temporaries and sorted them: at 100k x 32 in exact mode (k = 51, 4
rounds) about 0.65 s of the MST's ~2 s (profiled; benchmarks/README.md). These loops take
one pass each, with the same results: the first of equal weights, as ``argmin`` and a
stable ``lexsort`` pick.
"""

from __future__ import annotations

import numba
import numpy as np

from ops.phdbscan._row_blocks import map_row_blocks

__all__ = ["lightest_leaving", "mutual_reachability_lists", "per_component_best"]


@numba.njit(cache=True, nogil=True)
def _reach(
    knn_dist: np.ndarray, knn_idx: np.ndarray, core: np.ndarray, first: int, out: np.ndarray
) -> None:
    for r in range(out.shape[0]):
        i = first + r
        for j in range(knn_idx.shape[1]):
            q = knn_idx[i, j]
            if q < 0:
                out[r, j] = np.inf
            else:
                out[r, j] = max(core[i], core[q], knn_dist[i, j])


def mutual_reachability_lists(
    knn_dist: np.ndarray, knn_idx: np.ndarray, core: np.ndarray
) -> np.ndarray:
    """Each listed edge's mutual reachability ``max(core_a, core_b, d)``; ``inf`` for ``-1``.

    >>> mutual_reachability_lists(np.array([[1.0, 3.0]]), np.array([[1, -1]]),
    ...                           np.array([2.0, 0.5])).tolist()
    [[2.0, inf]]
    """
    W = np.empty(knn_idx.shape)

    def block(rows: slice) -> None:
        _reach(knn_dist, knn_idx, core, rows.start, W[rows])

    map_row_blocks(block, len(knn_idx))
    return W


@numba.njit(cache=True, nogil=True)
def _lightest(
    W: np.ndarray,
    knn_idx: np.ndarray,
    comp: np.ndarray,
    first: int,
    best_w: np.ndarray,
    best_q: np.ndarray,
) -> None:
    for r in range(best_w.shape[0]):
        i = first + r
        w, q = np.inf, -1
        for j in range(knn_idx.shape[1]):
            v = knn_idx[i, j]
            if v >= 0 and comp[v] != comp[i] and W[i, j] < w:
                w, q = W[i, j], v
        best_w[r], best_q[r] = w, q


def lightest_leaving(
    W: np.ndarray, knn_idx: np.ndarray, comp: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each point's lightest listed edge to another component: weight (``inf``) and point (-1).

    >>> lightest_leaving(np.array([[1.0, 2.0]]), np.array([[1, 2]]), np.array([0, 0, 1]))
    (array([2.]), array([2]))
    """
    n = len(knn_idx)
    best_w = np.empty(n)
    best_q = np.empty(n, np.int64)

    def block(rows: slice) -> None:
        _lightest(W, knn_idx, comp, rows.start, best_w[rows], best_q[rows])

    map_row_blocks(block, n)
    return best_w, best_q


@numba.njit(cache=True, nogil=True)
def per_component_best(
    comp: np.ndarray, ncomp: int, w: np.ndarray, u: np.ndarray, v: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lightest candidate edge ``u -> v`` per component, counting each edge for both ends.

    Edges with ``v < 0`` are none. Of equal weights, the first in the order ``u``'s side of
    every edge, then ``v``'s side wins.

    Returns
    -------
    bw : ndarray (ncomp,) float64
        ``inf`` for a component with no candidate.
    bu, bv : ndarray (ncomp,) int64
        Its edge, the end inside the component first; ``-1`` where none.
    """
    bw = np.full(ncomp, np.inf)
    bu = np.full(ncomp, -1, np.int64)
    bv = np.full(ncomp, -1, np.int64)
    for side in range(2):
        for e in range(len(u)):
            if v[e] < 0:
                continue
            a, b = (u[e], v[e]) if side == 0 else (v[e], u[e])
            c = comp[a]
            if bu[c] < 0 or w[e] < bw[c]:
                bw[c], bu[c], bv[c] = w[e], a, b
    return bw, bu, bv
