"""Exact kNN lists within the cells: GEMM candidates proved against rounding, then the cells.

A cell group's candidates come from one GEMM search (:func:`exact_group`), re-ranked in
float64 and kept where the GEMM's rounding cannot hide a nearer row; the list is then exact
within the probed cells, and :func:`bisector_bound` proves it exact among all rows. What
neither proves is searched against every row (:func:`search_all`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ops.phdbscan._knn import _faiss
from ops.phdbscan._knn_refine import _refine

__all__ = ["CentredRows", "bisector_bound", "exact_group", "search_all"]


def bisector_bound(
    P: np.ndarray, cent: np.ndarray, own: int, probed: np.ndarray, c_sq: np.ndarray
) -> np.ndarray:
    """Bound from below the distance of each point of ``P`` to any unprobed cell's points.

    All of ``P`` lie in cell ``own``; the bound is the Voronoi half-space distance (float64) to
    the cells not in ``probed``.
    """
    unprobed = np.ones(len(cent), bool)
    unprobed[probed] = False
    if not unprobed.any():
        return np.full(len(P), np.inf)
    P64 = P.astype(np.float64)
    C = cent.astype(np.float64)
    p_sq = (P64 * P64).sum(1)
    d2 = p_sq[:, None] + c_sq[None, :] - 2.0 * P64 @ C.T
    gap = np.linalg.norm(C - C[own], axis=1)
    gap[own] = np.inf
    bound = (d2[:, unprobed] - d2[:, own : own + 1]) / (2.0 * gap[unprobed][None, :])
    # the half-space identity is evaluated with float rounding; shrink so it stays a bound
    return np.maximum(bound.min(1), 0.0) * (1 - 1e-6) - 1e-6


@dataclass(frozen=True)
class CentredRows:
    """Rows moved to the origin for the GEMM, and the rows as given, by which lists rank.

    The GEMM's rounding grows with ``|x|^2``, so exact mode searches centred float32 rows;
    but the lists must be the nearest rows *as given* (float32 or float64), in float64. A
    row moves by its rounding when centred, by at most ``shift``: distances between given
    rows differ from distances between centred rows by at most the two rows' shifts, which
    every proof here adds.

    Parameters
    ----------
    centred : ndarray (n, d) float32
        ``rows - mean`` rounded to float32.
    given : ndarray (n, d)
        The rows, float32 or float64.
    shift : ndarray (n,) float64
        A bound on ``|(given - mean) - centred|`` for each row.
    """

    centred: np.ndarray
    given: np.ndarray
    shift: np.ndarray

    @classmethod
    def of(cls, rows: np.ndarray) -> CentredRows:
        """Centre ``rows`` (float32 or float64) and bound each row's move."""
        given = np.ascontiguousarray(rows)
        mean = given.mean(0, dtype=np.float64)
        offset = given - mean
        centred = offset.astype(np.float32)
        moved = np.linalg.norm(offset - centred, axis=1)
        # the float64 arithmetic of this very bound rounds too, by ~2^-53 of the magnitudes
        scale = np.linalg.norm(given, axis=1) + np.linalg.norm(mean)
        return cls(centred, given, moved * (1 + 1e-6) + 2.0**-40 * scale)

    def take(self, rows: np.ndarray) -> CentredRows:
        """The rows ``rows``, in that order."""
        return CentredRows(self.centred[rows], self.given[rows], self.shift[rows])


# Candidates beyond k that the exact lists take from the GEMM search, so that a neighbour
# the GEMM's rounding ranked just past the k-th is still among them.
_EXACT_MARGIN = 8
# Bound on the rounding of the GEMM form |x|^2 + |y|^2 - 2xy in float32, in units of
# (|x| + |y|)^2 per dimension: d products summed (gamma_d) and three more roundings, doubled.
_GEMM_ROUNDING = 2.0 * 2.0**-24


def exact_group(
    Q: CentredRows,
    q: np.ndarray,
    X: CentredRows,
    db: np.ndarray,
    k: int,
    dist: np.ndarray,
    idx: np.ndarray,
) -> np.ndarray:
    """Exact ``k`` nearest rows ``db`` of rows ``q`` of ``Q``, or ``inf`` for the rows unproven.

    One GEMM search of the centred rows for ``k + _EXACT_MARGIN`` candidates (faster than
    FAISS's per-pair loop: benchmarks/README.md), ranked by float64 distances between the
    given rows. A row not listed lies at GEMM distance at least the last candidate's, so at
    least that less the GEMM's rounding bound and the two rows' shifts (:class:`CentredRows`);
    where the k-th float64 distance is no larger, no unlisted row of ``db`` is nearer and the
    list is exact within ``db``.

    Returns
    -------
    ndarray (len(q),) float64
        The k-th distance of each row whose list is exact within ``db``; ``inf`` for the
        others, which the caller searches again.
    """
    kx = min(k + _EXACT_MARGIN, len(db))
    if kx < k:
        return np.full(len(q), np.inf)
    Qq, Xdb = Q.centred[q], X.centred[db]
    D, nb = _faiss().knn(Qq, Xdb, kx)
    true_d = np.empty((len(q), kx))
    true_i = np.empty((len(q), kx), np.int64)
    candidates = np.where(nb >= 0, db[np.maximum(nb, 0)], -1)
    _refine(X.given, Q.given[q], candidates, 0, False, true_d, true_i)
    dist[q], idx[q] = true_d[:, :k], true_i[:, :k]
    kth = true_d[:, k - 1]
    if kx == len(db):  # every row of db is listed
        return kth
    reach = np.sqrt((Qq.astype(np.float64) ** 2).sum(1)) + np.sqrt(
        (Xdb.astype(np.float64) ** 2).sum(1).max()
    )
    rounding = (X.centred.shape[1] + 4) * _GEMM_ROUNDING * reach**2
    unlisted = np.sqrt(np.maximum(D[:, -1].astype(np.float64) - rounding, 0.0))
    unlisted -= Q.shift[q] + X.shift[db].max()
    return np.where(kth <= unlisted, kth, np.inf)


# Queries per FAISS call below the GEMM threshold that _gemm_search sets (20): FAISS's
# per-pair loop, exact to the float32 rounding of d^2 rather than of |x|^2.
_PER_PAIR_QUERIES = 16


def search_all(
    Q: CentredRows, rows: np.ndarray, X: CentredRows, k: int, dist: np.ndarray, idx: np.ndarray
) -> None:
    """Exact lists of rows ``rows`` of ``Q`` against all of ``X``: what the cells did not prove.

    The GEMM search with its proof first; the rows it cannot prove (ties at the k-th
    distance, or points far from the others) by FAISS's per-pair loop, ranked again by
    float64 distances between the given rows.
    """
    n = len(X.centred)
    kth = exact_group(Q, rows, X, np.arange(n), k, dist, idx)
    left = rows[~np.isfinite(kth)]
    for start in range(0, len(left), _PER_PAIR_QUERIES):
        batch = left[start : start + _PER_PAIR_QUERIES]
        nb = _faiss().knn(Q.centred[batch], X.centred, min(k, n))[1]
        batch_d = np.empty((len(batch), nb.shape[1]))
        batch_i = np.empty((len(batch), nb.shape[1]), np.int64)
        _refine(X.given, Q.given[batch], nb, 0, False, batch_d, batch_i)
        dist[batch, : nb.shape[1]], idx[batch, : nb.shape[1]] = batch_d, batch_i
