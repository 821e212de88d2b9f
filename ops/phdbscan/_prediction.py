"""hdbscan's prediction functions for a fitted PHDBSCAN: ``hdbscan.prediction``'s names.

``membership_vector(model, X)``, ``all_points_membership_vectors(model)`` and
``approximate_predict(model, X)`` return what ``hdbscan.prediction``'s functions of the same
names return for an hdbscan model of the same tree; they run vectorised
(:mod:`ops.phdbscan._soft`). Unlike hdbscan they build the prediction data on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ops.phdbscan._soft import all_points_vectors, membership_vectors

if TYPE_CHECKING:
    from ops.phdbscan._estimator import PHDBSCAN

__all__ = [
    "all_points_membership_vectors",
    "approximate_predict",
    "membership_vector",
    "training_neighbours",
]

_BLOCK = 65_536  # new points per neighbour search


def all_points_membership_vectors(model: PHDBSCAN, rows: Any = None) -> np.ndarray:
    """Soft cluster membership of every training point.

    Parameters
    ----------
    model : PHDBSCAN
        A fitted model.
    rows : array-like of int, optional
        Only these training points, in this order (not in hdbscan): the same rows of the
        full result, without its ``n_samples x n_clusters`` floats, which pass memory once
        clusters grow with the data.

    Returns
    -------
    ndarray (n_samples, n_clusters)
        ``[i, j]``: probability that point ``i`` belongs to cluster ``j``; hdbscan returns
        ``zeros(n_samples)`` when there is no cluster, and so does this.
    """
    return all_points_vectors(model.prediction_data_, rows)


def training_neighbours(model: PHDBSCAN, rows: Any, k: int) -> np.ndarray:
    """The ``k`` nearest other training points of training points ``rows`` (not in hdbscan).

    The model's own search for new points (exact on small fits, cell-grouped above), so a
    caller needs no second index over the same vectors.

    Parameters
    ----------
    model : PHDBSCAN
        A fitted model.
    rows : array-like of int
        Training points.
    k : int
        Neighbours per point, nearest first.

    Returns
    -------
    ndarray (len(rows), k) int64
        Training indices, ``-1`` where the search found fewer.
    """
    rows = np.asarray(rows, dtype=np.int64)
    out = np.full((len(rows), k), -1, dtype=np.int64)
    found = min(k, model._raw_data.shape[0] - 1)  # a small fit has fewer other points
    if found <= 0:
        return out
    for start in range(0, len(rows), _BLOCK):
        block = rows[start : start + _BLOCK]
        _, idx = model._neighbours(model._raw_data[block], found + 1)
        keep = idx != block[:, None]
        # the point itself is normally first; where a duplicate displaced it, drop the last
        keep[keep.all(1), -1] = False
        out[start : start + len(block), :found] = idx[keep].reshape(len(block), found)
    return out


def membership_vector(model: PHDBSCAN, points_to_predict: Any) -> np.ndarray:
    """Soft cluster membership of new points.

    Parameters
    ----------
    model : PHDBSCAN
        A fitted model.
    points_to_predict : array-like (m, n_features)

    Returns
    -------
    ndarray (m, n_clusters)
    """
    data = model.prediction_data_
    X = model._validate(points_to_predict, reset=False)
    out = np.zeros((X.shape[0], data.selected.shape[0]))
    for start in range(0, X.shape[0], _BLOCK):
        block = X[start : start + _BLOCK]
        dist, idx = model._neighbours(block, 2 * model._ms_predict)
        out[start : start + len(block)] = membership_vectors(
            data, block, dist, idx, model._ms_predict
        )
    return out


def approximate_predict(model: PHDBSCAN, points_to_predict: Any) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities of new points: :meth:`PHDBSCAN.approximate_predict`.

    Parameters
    ----------
    model : PHDBSCAN
        A fitted model.
    points_to_predict : array-like (m, n_features)

    Returns
    -------
    labels : ndarray (m,) int64
    probabilities : ndarray (m,) float64
    """
    return model.approximate_predict(points_to_predict)
