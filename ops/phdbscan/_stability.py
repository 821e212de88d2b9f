"""Cluster stability (Campello, Moulavi & Sander 2013, sec. 4.1) in numba.

A cluster's stability is the sum, over the points and clusters that leave it, of the lambda
at which they leave less the cluster's birth lambda, weighted by their size. hdbscan's
compiled ``compute_stability`` finds each cluster's birth by sorting the whole condensed
tree as a structured array: 0.7 s at 1M rows, 2.4 s at 3M. A cluster leaves its parent
in one row, so one pass finds the births; the sums run in hdbscan's row order with its
arithmetic, so the stabilities are hdbscan's to the bit.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["cluster_stability"]


def cluster_stability(condensed_tree: np.ndarray) -> dict:
    """Stability of every cluster of a condensed tree (hdbscan's raw layout).

    Returns
    -------
    dict
        ``{cluster id: stability}``, as ``hdbscan._hdbscan_tree.compute_stability`` returns
        it (float64 keys and values), for :func:`ops.phdbscan._selection.select_clusters`.
    """
    parent = np.ascontiguousarray(condensed_tree["parent"], dtype=np.int64)
    child = np.ascontiguousarray(condensed_tree["child"], dtype=np.int64)
    lam = np.ascontiguousarray(condensed_tree["lambda_val"], dtype=np.float64)
    size = np.ascontiguousarray(condensed_tree["child_size"], dtype=np.int64)
    root, last = int(parent.min()), int(parent.max())
    sums = _stability_sums(parent, child, lam, size, root, last)
    return dict(np.vstack((np.arange(root, last + 1), sums)).T)


@numba.njit(cache=True)
def _stability_sums(
    parent: np.ndarray, child: np.ndarray, lam: np.ndarray, size: np.ndarray, root: int, last: int
) -> np.ndarray:
    """Each cluster's ``sum((lambda - birth) * size)`` over its rows, in row order."""
    births = np.full(max(child.max(), root) + 1, np.nan)
    for i in range(len(child)):  # the least lambda of a child's rows: it has one
        c = child[i]
        if np.isnan(births[c]) or lam[i] < births[c]:
            births[c] = lam[i]
    births[root] = 0.0
    sums = np.zeros(last - root + 1)
    for i in range(len(parent)):
        sums[parent[i] - root] += (lam[i] - births[parent[i]]) * size[i]
    return sums
