"""The condensed tree with the merges of one weight ordered canonically: labels free of tie order.

hdbscan condenses a *binary* single-linkage tree. When several MST edges share a weight (a
shared core distance, duplicated rows, integer data), the binary shape of those merges is
the order in which a sort happened to list them, and the condensed tree depends on it: a
point tied to two clusters joins whichever was merged first, and a small group can become a
cluster in one order and noise in another. hdbscan's own exact algorithms disagree with each
other on such data, and its unstable ``argsort`` leaves the order to the sort's internals.

Here the merges of one weight are first grouped (a component formed at distance ``d`` from
several components is one node with all of them as children), which depends only on the
components at each distance: the same for every minimum spanning tree, whichever tied edges
it holds and in whatever order. The children are then merged in the order Prim's algorithm
from point 0 takes them (hdbscan's ``generic`` and ``prims_*`` algorithms, the default above
60 dimensions, and scikit-learn's): entering a node at one child, it grows that child
completely, then takes the tied edge reaching the smallest point index, and so on, each
child entered at that point. Condensing that binary order top down as hdbscan does gives
hdbscan's condensed tree for that order, in hdbscan's raw layout, so hdbscan's stability,
selection, GLOSH and plotting code read it unchanged.

Which point Prim's enters a child at is decided by *every* edge of the graph tied with the
node's weight, not only by the one the spanning tree happens to hold: a point whose core
distance is the weight is tied to each of its neighbours within it, and Prim's takes the one
of smallest index. So :func:`condense_mst` also takes the kNN lists' tied edges
(:func:`ops.phdbscan._level_dendrogram.tied_list_edges`); with them the condensed tree is
that of hdbscan's Prim's with its tied edges kept in the order Prim's emits them, whichever
spanning tree is given.
hdbscan itself then sorts them with an unstable ``argsort``, whose reordering of tied rows
depends on NumPy's sorting kernel and so on the CPU (docs/phdbscan.md).

This module holds the Prim's order and the condensing; the level dendrogram they walk, and
the tied edges of each node, come from :mod:`ops.phdbscan._level_dendrogram`.
"""

from __future__ import annotations

import heapq

import numba
import numpy as np

from ops.phdbscan._level_dendrogram import edges_by_node, level_dendrogram, node_children

__all__ = ["CONDENSED_DTYPE", "condense_mst"]

CONDENSED_DTYPE = np.dtype(
    [("parent", np.intp), ("child", np.intp), ("lambda_val", np.float64), ("child_size", np.intp)]
)


@numba.njit(cache=True)
def _absorb_order(
    kids: np.ndarray, ends: np.ndarray, first: int, local: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Order in which Prim's algorithm, entering at child ``first``, takes the tied children.

    Prim's grows one child completely before it takes the next edge of the tied weight, and
    among those edges it takes the one reaching the point of smallest index. Returns the
    children's local indices in that order and the point through which each was entered.
    """
    k = kids.shape[0]
    for i in range(k):
        local[kids[i]] = i
    degree = np.zeros(k + 1, np.int64)
    for e in range(ends.shape[0]):
        degree[local[ends[e, 0]] + 1] += 1
        degree[local[ends[e, 1]] + 1] += 1
    adj_offsets = np.cumsum(degree)
    fill = adj_offsets[:-1].copy()
    adj = np.empty((2 * ends.shape[0], 2), np.int64)  # (child, point entered through)
    for e in range(ends.shape[0]):
        u, v = local[ends[e, 0]], local[ends[e, 1]]
        adj[fill[u], 0], adj[fill[u], 1] = v, ends[e, 3]
        fill[u] += 1
        adj[fill[v], 0], adj[fill[v], 1] = u, ends[e, 2]
        fill[v] += 1
    taken = np.zeros(k, np.bool_)
    order = np.empty(k, np.int64)
    entered_at = np.full(k, -1, np.int64)
    heap = [(np.int64(0), np.int64(0))]
    heap.pop()
    count = 0
    start = local[first]
    taken[start] = True
    order[0] = start
    count = 1
    for j in range(adj_offsets[start], adj_offsets[start + 1]):
        heapq.heappush(heap, (adj[j, 1], adj[j, 0]))
    while len(heap) > 0:
        point, v = heapq.heappop(heap)
        if taken[v]:
            continue
        taken[v] = True
        order[count] = v
        entered_at[v] = point
        count += 1
        for j in range(adj_offsets[v], adj_offsets[v + 1]):
            if not taken[adj[j, 0]]:
                heapq.heappush(heap, (adj[j, 1], adj[j, 0]))
    return order, entered_at


@numba.njit(cache=True)
def _condense(
    node_parent: np.ndarray,
    node_weight: np.ndarray,
    size: np.ndarray,
    offsets: np.ndarray,
    children: np.ndarray,
    edge_offsets: np.ndarray,
    ends: np.ndarray,
    n: int,
    min_cluster_size: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n_nodes = node_weight.shape[0]
    label = np.full(n_nodes, -1, np.int64)
    entry = np.full(n_nodes, -1, np.int64)
    path_child = np.full(n_nodes, -1, np.int64)
    root = n_nodes - 1
    label[root] = n
    next_label = n + 1
    out_parent = np.empty(2 * n, np.int64)
    out_child = np.empty(2 * n, np.int64)
    out_lambda = np.empty(2 * n)
    out_size = np.empty(2 * n, np.int64)
    pos = 0
    queue = np.empty(n_nodes, np.int64)
    queue[0] = root
    entry[root] = 0  # hdbscan's Prim's starts at point 0
    head, tail = 0, 1
    stack = np.empty(n_nodes, np.int64)
    local = np.zeros(n_nodes, np.int64)
    while head < tail:
        node = queue[head]
        head += 1
        if path_child[node] < 0:  # entered from outside: mark the path down to the entry point
            x = entry[node]
            while x != node:
                path_child[node_parent[x]] = x
                x = node_parent[x]
        lam = 1.0 / node_weight[node] if node_weight[node] > 0 else np.inf
        kids = children[offsets[node] : offsets[node + 1]]
        order, entered_at = _absorb_order(
            kids, ends[edge_offsets[node] : edge_offsets[node + 1]], path_child[node], local
        )
        # hdbscan's binary merges at this weight, in Prim's order, condensed top down: the
        # last child taken splits off first from the union of those taken before it
        prefix = np.cumsum(size[kids[order]])
        current = label[node]
        fall_label = np.full(kids.shape[0], current, np.int64)  # cluster a small child leaves
        i = kids.shape[0] - 1
        while i >= 1:
            c = kids[order[i]]
            rest_big = prefix[i - 1] >= min_cluster_size
            child_big = size[c] >= min_cluster_size
            if rest_big and child_big:
                rest_label = next_label
                label[c] = next_label + 1
                next_label += 2
                out_parent[pos], out_child[pos] = current, rest_label
                out_lambda[pos], out_size[pos] = lam, prefix[i - 1]
                out_parent[pos + 1], out_child[pos + 1] = current, label[c]
                out_lambda[pos + 1], out_size[pos + 1] = lam, size[c]
                pos += 2
                entry[c] = entered_at[order[i]]
                queue[tail] = c
                tail += 1
                current = rest_label
            elif rest_big:
                fall_label[order[i]] = current
            elif child_big:
                label[c] = current
                entry[c] = entered_at[order[i]]
                queue[tail] = c
                tail += 1
                for j in range(i):
                    fall_label[order[j]] = current
                break
            else:
                for j in range(i + 1):
                    fall_label[order[j]] = current
                break
            i -= 1
        if i == 0:  # the first child taken is what remains: it continues the current cluster
            c = kids[order[0]]
            label[c] = current
            entry[c] = entry[node]  # its path to the entry point is marked already
            queue[tail] = c
            tail += 1
        for j in range(kids.shape[0]):
            c = kids[j]
            if label[c] >= 0:
                continue
            depth = 1
            stack[0] = c
            while depth > 0:
                depth -= 1
                s = stack[depth]
                if s < n:
                    out_parent[pos], out_child[pos] = fall_label[j], s
                    out_lambda[pos], out_size[pos] = lam, 1
                    pos += 1
                for q in range(offsets[s], offsets[s + 1]):
                    stack[depth] = children[q]
                    depth += 1
    return out_parent[:pos], out_child[:pos], out_lambda[:pos], out_size[:pos]


def condense_mst(
    mst: np.ndarray, min_cluster_size: int, graph_edges: np.ndarray | None = None
) -> np.ndarray:
    """Condensed tree of a minimum spanning tree, all merges at one distance taken as one step.

    Parameters
    ----------
    mst : ndarray of shape (n - 1, 3)
        Rows ``(a, b, weight)`` of a spanning tree of ``n`` points, in any order.
    min_cluster_size : int
        Smallest child counted as a cluster.
    graph_edges : ndarray of shape (m, 3), optional
        Further edges ``(a, b, weight)`` of the graph the tree spans (the kNN lists, with
        weights computed as the tree's). Those tied with the tree's edges decide where
        Prim's enters each child, as the tree's own edges do; with every tied edge given,
        the labels no longer depend on which of them the tree holds.

    Returns
    -------
    ndarray
        hdbscan's raw condensed tree: ``(parent, child, lambda_val, child_size)`` rows,
        clusters numbered from ``n`` (the root).
    """
    n = mst.shape[0] + 1
    if n < 2:
        return np.zeros(0, CONDENSED_DTYPE)
    if graph_edges is None:
        graph_edges = np.zeros((0, 3))
    order = np.argsort(mst[:, 2], kind="stable")
    extra = np.argsort(graph_edges[:, 2], kind="stable")
    node_parent, node_weight, tied = level_dendrogram(
        mst[order, 0].astype(np.int64),
        mst[order, 1].astype(np.int64),
        mst[order, 2].astype(np.float64),
        graph_edges[extra, 0].astype(np.int64),
        graph_edges[extra, 1].astype(np.int64),
        graph_edges[extra, 2].astype(np.float64),
        n,
    )
    size, offsets, children = node_children(node_parent, n)
    edge_offsets, ends = edges_by_node(tied, node_parent)
    parent, child, lam, child_size = _condense(
        node_parent,
        node_weight,
        size,
        offsets,
        children,
        edge_offsets,
        ends,
        n,
        int(min_cluster_size),
    )
    out = np.empty(parent.shape[0], CONDENSED_DTYPE)
    out["parent"], out["child"], out["lambda_val"], out["child_size"] = (
        parent,
        child,
        lam,
        child_size,
    )
    return out
