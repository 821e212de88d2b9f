"""kNN distances again in float64, by direct differences: the exact tree's and prediction's."""

from __future__ import annotations

import numba
import numpy as np

from ops.phdbscan._row_blocks import map_row_blocks

__all__ = ["refine_float64", "without_self"]


@numba.njit(cache=True, nogil=True)
def _own_entry(listed: np.ndarray, own: int) -> int:
    """Where a self-kNN list holds its row ``own``; its last entry where it does not.

    The row is absent when more exact duplicates than the list holds come before it, and
    then the farthest entry is the one to drop.
    """
    for j in range(len(listed)):
        if listed[j] == own:
            return j
    return len(listed) - 1


@numba.njit(cache=True, nogil=True)
def _refine(
    X: np.ndarray,
    Q: np.ndarray,
    idx: np.ndarray,
    first: int,
    drop_self: bool,
    out_d: np.ndarray,
    out_i: np.ndarray,
) -> None:
    n, k = idx.shape
    dim = X.shape[1]
    width = out_d.shape[1]
    tmp_d = np.empty(width, np.float64)
    tmp_i = np.empty(width, np.int64)
    for r in range(n):
        drop = _own_entry(idx[r], first + r) if drop_self else -1
        m = 0
        for j in range(k):
            if j == drop:
                continue
            q = idx[r, j]
            if q < 0:
                tmp_d[m] = np.inf
                tmp_i[m] = -1
            else:
                s = 0.0
                for t in range(dim):
                    diff = np.float64(X[q, t]) - np.float64(Q[r, t])
                    s += diff * diff
                tmp_d[m] = np.sqrt(s)
                tmp_i[m] = q
            m += 1
        order = np.argsort(tmp_d, kind="mergesort")
        for j in range(width):
            out_d[r, j] = tmp_d[order[j]]
            out_i[r, j] = tmp_i[order[j]]


def refine_float64(
    X: np.ndarray, indices: np.ndarray, queries: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Recompute kNN distances in float64 by direct differences and re-sort each row (stable).

    FAISS answers in float32 through ``|x|^2 + |y|^2 - 2xy``; hdbscan decides in float64 and
    mutual-reachability ties are common (``mr`` is often a core distance), so the exact tree
    and prediction use float64 distances. A numba loop, so no ``n x k x d`` float64 block is
    gathered (benchmarks/README.md).

    Without ``queries`` the rows are ``X``'s own (a self-kNN graph): each row's own index is
    dropped rather than column 0, which keeps exact duplicates right (a duplicate may be
    listed before the point itself); where the row is absent its farthest entry is dropped,
    so ``k - 1`` columns come back. With ``queries`` (new points, one row each) all ``k`` do.

    Returns
    -------
    dist : ndarray (n, k or k - 1) float64, ascending, ``inf`` where missing.
    idx : ndarray (n, k or k - 1) int64, ``-1`` where missing.
    """
    n, k = indices.shape
    drop_self = queries is None
    width = k - 1 if drop_self else k
    out_d = np.empty((n, width), np.float64)
    out_i = np.empty((n, width), np.int64)
    if width == 0 or n == 0:
        return out_d, out_i
    X = np.ascontiguousarray(X)
    Q = np.ascontiguousarray(X if queries is None else queries)
    indices = np.ascontiguousarray(indices, np.int64)

    def block(rows: slice) -> None:
        _refine(X, Q[rows], indices[rows], rows.start, drop_self, out_d[rows], out_i[rows])

    # each row's result is its own, so the output does not depend on the number of threads
    map_row_blocks(block, n)
    return out_d, out_i


@numba.njit(cache=True, nogil=True)
def _without_self(
    dist: np.ndarray, idx: np.ndarray, first: int, out_d: np.ndarray, out_i: np.ndarray
) -> None:
    for r in range(idx.shape[0]):
        drop = _own_entry(idx[r], first + r)
        m = 0
        for j in range(idx.shape[1]):
            if j != drop:
                out_d[r, m] = dist[r, j]
                out_i[r, m] = idx[r, j]
                m += 1


def without_self(dist: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A self-kNN graph's lists without each row's own entry, as :func:`refine_float64` drops it.

    For lists already exact in float64 (:func:`ops.phdbscan._knn_graph.cell_knn` in exact
    mode): each row's own index is dropped, or its farthest entry where it is absent (more
    exact duplicates than the list holds); the order of the rest is kept.

    Returns
    -------
    dist : ndarray (n, k - 1) float64
    idx : ndarray (n, k - 1) int64
    """
    n, k = idx.shape
    out_d = np.empty((n, max(k - 1, 0)), np.float64)
    out_i = np.empty((n, max(k - 1, 0)), np.int64)
    if k > 1 and n:
        dist = np.ascontiguousarray(dist, np.float64)
        idx = np.ascontiguousarray(idx, np.int64)
        map_row_blocks(
            lambda rows: _without_self(dist[rows], idx[rows], rows.start, out_d[rows], out_i[rows]),
            n,
        )
    return out_d, out_i
