"""GLOSH outlier scores (Campello, Moulavi, Zimek & Sander 2015, sec. 5) in numba.

A point's score is how far below its cluster's densest level it falls out of the tree:
``(lambda_max - lambda_p) / lambda_max``, where ``lambda_max`` is the largest lambda at which
any point leaves the cluster or any cluster below it. hdbscan's compiled ``outlier_scores``
sorts the whole condensed tree as a structured array to find each cluster's largest lambda
(1.5 s at 1M rows, 4.6 s at 3M); here one pass over the rows finds it, with the same
arithmetic, so the scores are hdbscan's to the bit.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["cluster_deaths", "glosh_scores"]


def glosh_scores(condensed_tree: np.ndarray) -> np.ndarray:
    """GLOSH outlier score of every point of a condensed tree (hdbscan's raw layout)."""
    if condensed_tree.shape[0] == 0:
        return np.zeros(0)
    parent = np.ascontiguousarray(condensed_tree["parent"], dtype=np.int64)
    child = np.ascontiguousarray(condensed_tree["child"], dtype=np.int64)
    lam = np.ascontiguousarray(condensed_tree["lambda_val"], dtype=np.float64)
    return _scores(parent, child, lam, int(parent.min()))


@numba.njit(cache=True)
def cluster_deaths(parent: np.ndarray, child: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Each cluster's largest lambda among its own rows, by id (0 where none is larger)."""
    deaths = np.zeros(max(parent.max(), child.max()) + 1)
    for i in range(len(parent)):
        if lam[i] > deaths[parent[i]]:
            deaths[parent[i]] = lam[i]
    return deaths


@numba.njit(cache=True)
def _scores(parent: np.ndarray, child: np.ndarray, lam: np.ndarray, root: int) -> np.ndarray:
    """hdbscan's loops: each cluster's deepest lambda, carried up from the leaves, then scores.

    The points are ``0 .. root - 1``; clusters are ``root`` and up. Rows come parents first,
    so walking them backwards finishes a cluster before its parent reads it.
    """
    deaths = cluster_deaths(parent, child, lam)
    for i in range(len(parent) - 1, -1, -1):
        if deaths[child[i]] > deaths[parent[i]]:
            deaths[parent[i]] = deaths[child[i]]
    scores = np.zeros(root)
    for i in range(len(parent)):
        point = child[i]
        if point < root:
            top = deaths[parent[i]]
            if top != 0.0 and np.isfinite(lam[i]):
                scores[point] = (top - lam[i]) / top
    return scores
