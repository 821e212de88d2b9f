"""The spanning tree's rows in the order hdbscan's Prim's algorithm hands them to its sort.

Mutual reachability makes equal edge weights the rule, not the exception: every MST edge
whose weight is a point's core distance ties with that point's other such edges, and integer
data or duplicated rows add more. hdbscan builds a *binary* single-linkage tree from its
spanning tree sorted by weight, so among equal weights the tree's shape, and with it which
cluster a tied point joins, is the order the sort leaves them in. That order is decided in
two steps, and both are reproduced here:

1. **Which edges, in which order.** hdbscan's Prim's (``generic``, ``prims_kdtree``,
   ``prims_balltree``, its default above 60 dimensions) grows the tree from point 0, each
   step taking the outside point of smallest key (its least weight to the tree, ties to the
   smallest index), joined to the first tree point that reached that key.
   :func:`prims_emission` runs the same rule with a heap over the spanning tree plus every
   kNN-list edge tied with a tree weight (:func:`tied_list_edges`): an edge that ties can
   change which point has the least key and which tree point reached it first, and with all
   of them given the emission is the same whichever spanning tree PHDBSCAN found.
2. **The sort.** hdbscan then orders the rows with NumPy's default ``argsort``, which is not
   stable: how it reorders equal weights depends on NumPy's sorting kernel (AVX-512 or not),
   and :func:`hdbscan_order` calls the same sort on the same array, so the result is
   hdbscan's on whatever machine both run.

On the data in ``tests/ops/phdbscan/test_ties.py`` the emitted rows equal those of hdbscan's
own Prim's bit for bit; figures in ``benchmarks/README.md`` ("Soft clustering and ties").
"""

from __future__ import annotations

import heapq

import numba
import numpy as np

from ops.phdbscan._row_blocks import map_row_blocks

__all__ = ["hdbscan_order", "prims_emission", "tied_list_edges"]


@numba.njit(cache=True, nogil=True)
def _tied(
    knn_dist: np.ndarray, knn_idx: np.ndarray, core: np.ndarray, weights: np.ndarray, first: int
) -> np.ndarray:
    """Rows ``(a, b, weight)`` of the tied list edges of points ``first ..``, row-major."""
    n, k = knn_idx.shape
    found = np.zeros((n, k), np.bool_)
    count = 0
    for i in range(n):
        for c in range(k):
            j = knn_idx[i, c]
            if j < 0:
                continue
            w = max(core[first + i], core[j], knn_dist[i, c])
            at = np.searchsorted(weights, w)
            if at < weights.shape[0] and weights[at] == w:
                found[i, c] = True
                count += 1
    out = np.empty((count, 3))
    e = 0
    for i in range(n):
        for c in range(k):
            if found[i, c]:
                j = knn_idx[i, c]
                out[e, 0], out[e, 1] = first + i, j
                out[e, 2] = max(core[first + i], core[j], knn_dist[i, c])
                e += 1
    return out


def tied_list_edges(
    knn_dist: np.ndarray, knn_idx: np.ndarray, core: np.ndarray, tree_weights: np.ndarray
) -> np.ndarray:
    """Select the kNN lists' mutual-reachability edges whose weight is one of the tree's.

    Only those can tie with a tree edge. A tie beyond both points' lists is not seen (as a
    core distance is a list distance, that needs an exact distance tie between two points
    denser than it).

    Parameters
    ----------
    knn_dist, knn_idx : ndarray (n, k)
        Neighbours of each point, the point itself excluded, ``-1`` where missing.
    core : ndarray (n,)
        Core distances, in the same units as the tree's weights.
    tree_weights : ndarray (n - 1,)
        The spanning tree's weights.

    Returns
    -------
    ndarray (m, 3)
        Rows ``(a, b, weight)``.
    """
    # one pass with a binary search per entry: np.isin would sort all n k weights (~1 s at
    # 100k x 67) and materialise them; blocks of rows on a pool of threads, in row order
    knn_dist = np.ascontiguousarray(knn_dist, dtype=np.float64)
    knn_idx = np.ascontiguousarray(knn_idx, dtype=np.int64)
    core = np.ascontiguousarray(core, dtype=np.float64)
    weights = np.unique(tree_weights)

    def block(rows: slice) -> np.ndarray:
        return _tied(knn_dist[rows], knn_idx[rows], core, weights, rows.start)

    blocks = map_row_blocks(block, len(knn_idx))
    return np.concatenate(blocks) if blocks else np.zeros((0, 3))


@numba.njit(cache=True)
def _emit(mst: np.ndarray, tied: np.ndarray, order: np.ndarray) -> np.ndarray:
    # Points are renumbered by their rank in ``order``, so that a point's tree neighbours sit
    # near it in every array read here; the heap still breaks ties by the original index.
    # Both edge lists are read in place: the tied edges are millions at 100k points (n k of
    # them can tie), and stacking and casting them cost more than this loop.
    n = order.shape[0]
    rank = np.empty(n, np.int64)
    for i in range(n):
        rank[order[i]] = i
    degree = np.zeros(n + 1, np.int64)
    for edges in (mst, tied):
        for e in range(edges.shape[0]):
            degree[rank[int(edges[e, 0])] + 1] += 1
            degree[rank[int(edges[e, 1])] + 1] += 1
    offsets = np.cumsum(degree)
    fill = offsets[:-1].copy()
    neighbour = np.empty(offsets[-1], np.int64)
    weight = np.empty(offsets[-1], np.float64)
    for edges in (mst, tied):
        for e in range(edges.shape[0]):
            a, b, w = rank[int(edges[e, 0])], rank[int(edges[e, 1])], edges[e, 2]
            neighbour[fill[a]], weight[fill[a]] = b, w
            fill[a] += 1
            neighbour[fill[b]], weight[fill[b]] = a, w
            fill[b] += 1
    key = np.full(n, np.inf)
    source = np.full(n, -1, np.int64)
    in_tree = np.zeros(n, np.bool_)
    out = np.empty((n - 1, 3))
    heap = [(np.inf, np.int64(0), np.int64(0))]  # (key, original index, rank)
    heap.pop()
    current = rank[0]
    in_tree[current] = True
    for step in range(n - 1):
        for q in range(offsets[current], offsets[current + 1]):
            j = neighbour[q]
            # strictly less, as hdbscan's update: the first tree point to reach a key keeps it
            if not in_tree[j] and weight[q] < key[j]:
                key[j] = weight[q]
                source[j] = current
                heapq.heappush(heap, (weight[q], order[j], j))
        while True:  # least key, then least original index; stale entries skipped
            k, point, j = heapq.heappop(heap)
            if not in_tree[j] and k == key[j]:
                break
        in_tree[j] = True
        out[step, 0], out[step, 1], out[step, 2] = order[source[j]], point, k
        current = j
    return out


def prims_emission(
    mst: np.ndarray, tied: np.ndarray | None = None, order: np.ndarray | None = None
) -> np.ndarray:
    """Rows of hdbscan's Prim's tree from point 0, in the order it adds them.

    Parameters
    ----------
    mst : ndarray (n - 1, 3)
        A minimum spanning tree, rows ``(a, b, weight)`` in any order.
    tied : ndarray (m, 3), optional
        Further edges of the graph weighing as much as a tree edge (:func:`tied_list_edges`).
    order : ndarray (n,), optional
        The points in an order that keeps tree neighbours near each other, such as the
        approximate kNN graph's cells (``CellIndex.order``). The rows are the same in any
        order; this one only makes the walk's reads local: 2.0 -> 1.2 s at 3M points
        (``benchmarks/README.md``). Default: the points' own order.

    Returns
    -------
    ndarray (n - 1, 3)
        ``(source, added point, weight)`` rows, as ``mst_linkage_core_vector`` returns them.
    """
    mst = np.ascontiguousarray(mst, dtype=np.float64)
    tied = np.zeros((0, 3)) if tied is None else np.ascontiguousarray(tied, dtype=np.float64)
    n = mst.shape[0] + 1
    order = np.arange(n) if order is None else np.ascontiguousarray(order, dtype=np.int64)
    return _emit(mst, tied, order)


def hdbscan_order(
    mst: np.ndarray, tied: np.ndarray | None = None, order: np.ndarray | None = None
) -> np.ndarray:
    """The spanning tree as hdbscan's Prim's algorithms hand it to single linkage.

    Parameters
    ----------
    mst, tied, order
        As :func:`prims_emission`.

    Returns
    -------
    ndarray (n - 1, 3)
        Rows sorted by weight with NumPy's default ``argsort`` of Prim's emission, as hdbscan
        sorts them: not stable, so equal weights come out as that sort leaves them.
    """
    if mst.shape[0] == 0:
        return mst
    emitted = prims_emission(mst, tied, order)
    return emitted[np.argsort(emitted[:, 2])]
