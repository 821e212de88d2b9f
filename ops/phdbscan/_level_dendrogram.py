"""The level dendrogram of a spanning tree: one node per component formed at one weight.

:func:`level_dendrogram` groups the merges of one weight into one node whose children are the
components joined at it, and records the edges tied with that weight that join two of its
children: the tree's own and the graph's further edges, which :func:`tied_list_edges` selects
from the kNN lists. :func:`node_children` and :func:`edges_by_node` lay both out per node for
the condensing in :mod:`ops.phdbscan._level_tree`, whose docstring says why ties are taken so.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["edges_by_node", "level_dendrogram", "node_children", "tied_list_edges"]


@numba.njit(cache=True)
def _find(parent: np.ndarray, x: int) -> int:
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:  # path compression
        nxt = parent[x]
        parent[x] = root
        x = nxt
    return root


@numba.njit(cache=True)
def level_dendrogram(
    a: np.ndarray,
    b: np.ndarray,
    w: np.ndarray,
    ta: np.ndarray,
    tb: np.ndarray,
    tw: np.ndarray,
    n: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Multi-way dendrogram of tree edges sorted by weight: a node per component formed at one.

    Parameters
    ----------
    a, b, w : ndarray (n - 1,)
        The spanning tree's edges ``(a, b, weight)``, sorted by weight.
    ta, tb, tw : ndarray (m,)
        Further edges of the graph, sorted by weight; one whose weight is a level and that
        joins two different children of that level's node is a tied edge of the node, as
        the tree's own edges are.
    n : int
        Number of points.

    Returns
    -------
    node_parent : ndarray (n_nodes,)
        Each node's parent, ``-1`` for the root. Nodes ``0..n-1`` are the points, later
        nodes have larger ids than their children.
    node_weight : ndarray (n_nodes,)
        Each node's merge distance (0 for the points).
    ends : ndarray (e, 4)
        The tied edges as rows ``(child, child, point, point)``.
    """
    m = a.shape[0]
    mt = ta.shape[0]
    dsu = np.arange(n)
    top = np.arange(n)  # dendrogram node of each union-find root's component
    stamp = np.full(n, -1, np.int64)
    new_node = np.zeros(n, np.int64)
    node_parent = np.full(2 * n - 1, -1, np.int64)
    node_weight = np.zeros(2 * n - 1)
    top_a = np.empty(m, np.int64)
    top_b = np.empty(m, np.int64)
    ttop_a = np.empty(mt, np.int64)
    ttop_b = np.empty(mt, np.int64)
    ends = np.empty((m + mt, 4), np.int64)
    n_ends = 0
    nxt = n
    start = 0
    t = 0
    while start < m:
        stop = start
        while stop < m and w[stop] == w[start]:
            stop += 1
        while t < mt and tw[t] < w[start]:
            t += 1
        t_stop = t
        while t_stop < mt and tw[t_stop] == w[start]:
            t_stop += 1
        for e in range(start, stop):  # the components as they were below this weight
            top_a[e] = top[_find(dsu, a[e])]
            top_b[e] = top[_find(dsu, b[e])]
        for e in range(t, t_stop):
            ttop_a[e] = top[_find(dsu, ta[e])]
            ttop_b[e] = top[_find(dsu, tb[e])]
        for e in range(start, stop):
            ra, rb = _find(dsu, a[e]), _find(dsu, b[e])
            dsu[rb] = ra
        for e in range(start, stop):
            r = _find(dsu, a[e])
            if stamp[r] != start:
                stamp[r] = start
                new_node[r] = nxt
                node_weight[nxt] = w[start]
                top[r] = nxt
                nxt += 1
            node_parent[top_a[e]] = new_node[r]
            node_parent[top_b[e]] = new_node[r]
            ends[n_ends, 0], ends[n_ends, 1] = top_a[e], top_b[e]
            ends[n_ends, 2], ends[n_ends, 3] = a[e], b[e]
            n_ends += 1
        for e in range(t, t_stop):  # apart below this weight, together at it: tied
            if ttop_a[e] != ttop_b[e] and _find(dsu, ta[e]) == _find(dsu, tb[e]):
                ends[n_ends, 0], ends[n_ends, 1] = ttop_a[e], ttop_b[e]
                ends[n_ends, 2], ends[n_ends, 3] = ta[e], tb[e]
                n_ends += 1
        t = t_stop
        start = stop
    return node_parent[:nxt], node_weight[:nxt], ends[:n_ends]


@numba.njit(cache=True)
def node_children(node_parent: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sizes and CSR children lists, each node's children ordered by their smallest point.

    Parameters
    ----------
    node_parent : ndarray (n_nodes,)
        As :func:`level_dendrogram` returns it.
    n : int
        Number of points.

    Returns
    -------
    size : ndarray (n_nodes,)
        Points under each node.
    offsets : ndarray (n_nodes + 1,)
        Node ``p``'s children are ``children[offsets[p]:offsets[p + 1]]``.
    children : ndarray (n_nodes - 1,)
    """
    n_nodes = node_parent.shape[0]
    size = np.zeros(n_nodes, np.int64)
    min_point = np.full(n_nodes, n, np.int64)
    size[:n] = 1
    min_point[:n] = np.arange(n)
    count = np.zeros(n_nodes + 1, np.int64)
    for c in range(n_nodes):  # children precede parents
        p = node_parent[c]
        if p >= 0:
            size[p] += size[c]
            min_point[p] = min(min_point[p], min_point[c])
            count[p + 1] += 1
    offsets = np.cumsum(count)
    fill = offsets[:-1].copy()
    children = np.empty(max(n_nodes - 1, 0), np.int64)
    for c in range(n_nodes):
        p = node_parent[c]
        if p >= 0:
            children[fill[p]] = c
            fill[p] += 1
    for p in range(n, n_nodes):
        block = children[offsets[p] : offsets[p + 1]]
        children[offsets[p] : offsets[p + 1]] = block[np.argsort(min_point[block])]
    return size, offsets, children


@numba.njit(cache=True)
def edges_by_node(ends: np.ndarray, node_parent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tied edges ``(child, child, point, point)`` grouped by the node they join (CSR).

    Parameters
    ----------
    ends : ndarray (e, 4)
        Tied edges as :func:`level_dendrogram` returns them.
    node_parent : ndarray (n_nodes,)
        As :func:`level_dendrogram` returns it.

    Returns
    -------
    offsets : ndarray (n_nodes + 1,)
        Node ``p``'s tied edges are ``grouped[offsets[p]:offsets[p + 1]]``.
    grouped : ndarray (e, 4)
    """
    n_nodes = node_parent.shape[0]
    count = np.zeros(n_nodes + 1, np.int64)
    for e in range(ends.shape[0]):
        count[node_parent[ends[e, 0]] + 1] += 1
    offsets = np.cumsum(count)
    fill = offsets[:-1].copy()
    grouped = np.empty_like(ends)
    for e in range(ends.shape[0]):
        p = node_parent[ends[e, 0]]
        grouped[fill[p]] = ends[e]
        fill[p] += 1
    return offsets, grouped


def tied_list_edges(
    knn_dist: np.ndarray, knn_idx: np.ndarray, core: np.ndarray, tree_weights: np.ndarray
) -> np.ndarray:
    """Select the kNN lists' mutual-reachability edges whose weight is one of the tree's.

    Only those can tie with a tree edge; :func:`level_dendrogram` keeps the ones that join two
    children of a node. A tie beyond both points' lists is not seen (as a core distance is
    a list distance, that needs an exact distance tie between two points denser than it).

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
    weight = np.maximum(np.maximum(core[:, None], core[knn_idx]), knn_dist)
    rows, cols = np.nonzero(np.isin(weight, tree_weights) & (knn_idx >= 0))
    return np.column_stack([rows, knn_idx[rows, cols], weight[rows, cols]]).astype(np.float64)
