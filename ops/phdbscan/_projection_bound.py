"""Lower bounds on the distance from points to other components, by centroid projections.

The exact tree (:mod:`ops.phdbscan._mst`) needs, for each point whose kNN list cannot
certify its lightest edge, the distance to the nearest point of another component. Here
each point's distance to every other component is bounded from below by projections on the
lines between component centroids (:func:`projection_bounds`, over the groups of
:func:`projection_groups`): a point whose bound is no lighter than its component's best
edge needs no search.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["projection_bounds", "projection_groups"]

# Rows projected at once: a block's float64 copy and projections stay a few MiB.
_BLOCK_ROWS = 16_384


def _centroids(X: np.ndarray, comp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Component centroids (float64) and each point's row among them."""
    comps, inv = np.unique(comp, return_inverse=True)
    # per column, bincount adds in row order as np.add.at did, at a tenth of its time
    cent = np.column_stack(
        [np.bincount(inv, weights=column, minlength=len(comps)) for column in X.T]
    )
    cent /= np.bincount(inv)[:, None]
    return cent, inv


def projection_groups(comp: np.ndarray, pts: np.ndarray, max_groups: int) -> np.ndarray:
    """Group points for :func:`projection_bounds`, refining ``comp``.

    Each component is a group when there are at most ``max_groups``; else the components of
    ``pts`` are, plus one group for the rest, whose bound is weaker (it spans scattered
    pieces) but as valid.

    Parameters
    ----------
    comp : ndarray (n,)
        Component of each point.
    pts : ndarray (m,)
        The points whose bounds are wanted.
    max_groups : int
        Most components kept as groups of their own.

    Returns
    -------
    ndarray (n,)
        Group of each point, ``0..groups-1``.
    """
    own = np.unique(comp)
    if len(own) > max_groups:
        own = np.unique(comp[pts])
    slot = np.minimum(np.searchsorted(own, comp), len(own) - 1)
    return np.where(own[slot] == comp, slot, len(own))


def projection_bounds(
    X: np.ndarray, pts: np.ndarray, comp: np.ndarray, groups: np.ndarray
) -> np.ndarray:
    """Bound from below the distance from each of ``pts`` to every point of other components.

    For groups ``A`` and ``B`` with centroids ``c_A``, ``c_B`` and the unit vector
    ``u = (c_B - c_A) / |c_B - c_A|``, every ``p`` in ``A`` and ``q`` in ``B`` have
    ``d(p, q) >= <q, u> - <p, u> >= min_B <., u> - <p, u>``: a projection only shortens
    distances. In high dimension no ball or cell bound separates blob-sized components
    (distances concentrate), but along the line joining their centroids they spread only as
    a 1-d marginal, so most of a blob's points are provably farther from every other blob
    than its lightest edge and need no search. Any grouping is valid (a group that spans
    components is simply never skipped); the blob-sized components of an earlier round stay
    the best groups after blobs merge, since a merged component's centroid lies between its
    blobs.
    The bound stays valid as components merge: the outside only shrinks. Costs
    ``n x groups x d``, in blocks of rows.

    Parameters
    ----------
    X : ndarray (n, d)
        The data.
    pts : ndarray (m,)
        The points to bound.
    comp : ndarray (n,)
        Component of each point.
    groups : ndarray (n,)
        Group of each point, as :func:`projection_groups` gives it.

    Returns
    -------
    ndarray (m,)
        A lower bound on the distance from each of ``pts`` to any point of another
        component, shrunk past float64 rounding.
    """
    cent, inv = _centroids(X, groups)
    m = len(cent)
    # a group is skipped for its own component only if it lies wholly inside it
    group_comp = np.full(m, -1, np.int64)
    group_comp[inv] = comp
    mixed = np.zeros(m, bool)
    mixed[inv[comp != group_comp[inv]]] = True
    group_comp[mixed] = -1
    between = cent[None, :, :] - cent[:, None, :]  # [a, b] = c_b - c_a
    length = np.linalg.norm(between, axis=2)
    unit = between / np.where(length > 0, length, np.inf)[..., None]
    # top[a, b] = max over q in group a of <q, u(a -> b)>, by blocks of each group's rows;
    # only the points bounded keep their projections (the first round bounds a few dozen
    # points against a group of all the others)
    by_group = np.argsort(inv, kind="stable")
    bounds = np.searchsorted(inv[by_group], np.arange(m + 1))
    top = np.full((m, m), -np.inf)
    for a in range(m):
        for start in range(bounds[a], bounds[a + 1], _BLOCK_ROWS):
            rows = by_group[start : min(start + _BLOCK_ROWS, bounds[a + 1])]
            top[a] = np.maximum(top[a], (X[rows].astype(np.float64) @ unit[a].T).max(0))
    proj = np.empty((len(pts), m))  # proj[r, b] = <p, u(group(p) -> b)>, p = pts[r]
    pts_group = inv[pts]
    for a in np.unique(pts_group):
        at = np.flatnonzero(pts_group == a)
        proj[at] = X[pts[at]].astype(np.float64) @ unit[a].T
    lower = _nearest_other_group(proj, top, inv, comp, group_comp, pts)
    # float64 rounding of the projections is ~1e-15 relative; shrink well past it
    return np.maximum(lower, 0.0) * (1 - 1e-9)


@numba.njit(cache=True, nogil=True)
def _nearest_other_group(
    proj: np.ndarray,
    top: np.ndarray,
    inv: np.ndarray,
    comp: np.ndarray,
    group_comp: np.ndarray,
    pts: np.ndarray,
) -> np.ndarray:
    """Each point's lowest projection gap to a group outside its component.

    For ``p`` in group ``a``: the minimum over groups ``b`` not lying in ``p``'s component of
    ``min_b <q, u(a -> b)> - <p, u(a -> b)>``, i.e. ``-top[b, a] - proj[r, b]`` for ``p = pts[r]``;
    one pass instead of three ``len(pts) x groups`` temporaries.
    """
    out = np.empty(len(pts))
    for r in range(len(pts)):
        p = pts[r]
        a = inv[p]
        least = np.inf
        for b in range(top.shape[0]):
            if group_comp[b] != comp[p]:
                least = min(least, -top[b, a] - proj[r, b])
        out[r] = least
    return out
