"""Lightest mutual-reachability edges between a few large components (slab-pruned search).

When the kNN graph leaves HDBSCAN* with a handful of big components (clusters), the
edges that join them must come from a search over *all* pairs of their points; brute force
costs ``|A| (n - |A|)`` per component, i.e. an all-pairs kNN again. Here the pair
``(A, B)`` is searched along the direction ``u`` joining their centroids: for any
``a`` in A and ``b`` in B, ``d(a, b) >= u.b - u.a``, so once an edge of weight ``w`` is known
only points in the two facing *slabs* (``u.a > min u.b - w`` and ``u.b < max u.a + w``) can
still beat it, and a whole pair is skipped when the slabs are empty. Each pair projects only
its own two components' points on its own direction: projecting every point on every
centroid (an ``n x C`` product, ``C`` growing with ``n``) took 44.6 of a 68 s fit at 1M x 64
with 440 components (benchmarks/README.md). ``mr >= core`` prunes further. The result is
exact: nothing is skipped that could be lighter.

:func:`join_components` runs Borůvka over components with this search (exact, or with
each component searched only against its ``max_partners`` nearest components by centroid
for the approximate tree).
"""

from __future__ import annotations

import numba
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

from ops.phdbscan._row_blocks import map_row_blocks

__all__ = ["join_components", "lightest_outgoing"]

_SEED = 256  # points per side in the first (bound-setting) block of a pair
_BLOCK = 1 << 21  # float64 entries per distance block
_PARALLEL_ROWS = 1 << 17  # facing points of larger components are sought on every core


@numba.njit(cache=True)
def _centroid_sums(X: np.ndarray, comp: np.ndarray, C: int) -> np.ndarray:
    """Per-component float64 sums of ``X``'s rows, added in row order (``np.add.at``'s sums).

    A loop, so no ``n x d`` float64 copy of ``X`` (512 MB at 1M x 64) is made each round.
    """
    cent = np.zeros((C, X.shape[1]))
    for i in range(X.shape[0]):
        c = comp[i]
        for j in range(X.shape[1]):
            cent[c, j] += X[i, j]
    return cent


# reassociation lets LLVM vectorise the dot product: 3x faster than the sequential sum, and
# the same on every run on one machine (a pair's bound holds under any summation order)
@numba.njit(cache=True, fastmath={"reassoc", "contract"})
def _project(X: np.ndarray, pts: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """``X[pts] @ direction`` in float64, reading the rows in place (no gathered copy).

    The gathered float64 copy and BLAS took 4x longer: the largest component (40-95% of the
    points at 1M) is the partner of ~100 others per join.
    """
    out = np.empty(len(pts))
    for i in range(len(pts)):
        s = 0.0
        for j in range(X.shape[1]):
            s += X[pts[i], j] * direction[j]
        out[i] = s
    return out


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _least_projections(
    X: np.ndarray, pts: np.ndarray, core: np.ndarray, w: float, direction: np.ndarray, keep: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``keep`` points of ``pts`` with ``core < w`` least by ``(X[p] @ direction, p)``.

    One pass, with a max-heap of the ``keep`` least so far: no projection of every point, no
    mask of their cores, no partition (each a pass over the largest component, per pair).

    Returns
    -------
    pts, projections : ndarray (at most keep,)
        In heap order.
    """
    heap_v = np.empty(keep)
    heap_p = np.empty(keep, np.int64)
    size = 0
    for i in range(len(pts)):
        p = pts[i]
        if core[p] >= w:
            continue
        v = 0.0
        for j in range(X.shape[1]):
            v += X[p, j] * direction[j]
        if size < keep:  # sift the new point up
            pos = size
            size += 1
            while pos > 0:
                up = (pos - 1) >> 1
                if heap_v[up] > v or (heap_v[up] == v and heap_p[up] > p):
                    break
                heap_v[pos], heap_p[pos] = heap_v[up], heap_p[up]
                pos = up
            heap_v[pos], heap_p[pos] = v, p
        elif v < heap_v[0] or (v == heap_v[0] and p < heap_p[0]):  # replace the top, sift down
            pos = 0
            while True:
                c = 2 * pos + 1
                if c >= size:
                    break
                if c + 1 < size and (
                    heap_v[c + 1] > heap_v[c]
                    or (heap_v[c + 1] == heap_v[c] and heap_p[c + 1] > heap_p[c])
                ):
                    c += 1
                if heap_v[c] < v or (heap_v[c] == v and heap_p[c] < p):
                    break
                heap_v[pos], heap_p[pos] = heap_v[c], heap_p[c]
                pos = c
            heap_v[pos], heap_p[pos] = v, p
    return heap_p[:size].copy(), heap_v[:size].copy()


def _facing(
    X: np.ndarray, pts: np.ndarray, core: np.ndarray, w: float, direction: np.ndarray, keep: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``keep`` points of ``pts`` with ``core < w`` least projected on ``direction``.

    Ties go to the smaller id, so the points are the same however ``pts`` is split: past
    ``_PARALLEL_ROWS`` points, blocks go to a thread per core, as reading the largest
    component's rows is bound by memory, which one core does not saturate.

    Returns
    -------
    pts, projections : ndarray (at most keep,)
        Ascending by ``(projection, id)``.
    """
    if len(pts) < _PARALLEL_ROWS:
        found = [_least_projections(X, pts, core, w, direction, keep)]
    else:
        found = map_row_blocks(
            lambda rows: _least_projections(X, pts[rows], core, w, direction, keep),
            len(pts),
            _PARALLEL_ROWS // 2,
        )
    rows = np.concatenate([f[0] for f in found])
    proj = np.concatenate([f[1] for f in found])
    first = np.lexsort((rows, proj))[:keep]
    return rows[first], proj[first]


def _ascending(key: np.ndarray, keep: int | None) -> np.ndarray:
    """Positions of ``key``'s ``keep`` smallest values (all if ``None``), in ascending order.

    A pair never reads past the first ``max(_SEED, cap)`` points of a side, so a partition
    replaces the sort of a whole component (400k points at 1M rows) per pair.
    """
    if keep is None or keep >= len(key):
        return np.argsort(key)
    head = np.argpartition(key, keep - 1)[:keep]
    return head[np.argsort(key[head])]


def _pair_search(
    X: np.ndarray,
    core: np.ndarray,
    a_pts: np.ndarray,
    sa: np.ndarray,
    b_pts: np.ndarray,
    sb: np.ndarray,
    w: float,
    cap: int | None,
) -> tuple[float, int, int]:
    """Lightest ``mr`` edge between point sets A and B lighter than ``w`` (exact unless ``cap``)."""
    best = (w, -1, -1)
    a_ok = core[a_pts] < w
    b_ok = core[b_pts] < w
    a_pts, sa, b_pts, sb = a_pts[a_ok], sa[a_ok], b_pts[b_ok], sb[b_ok]
    if len(a_pts) == 0 or len(b_pts) == 0:
        return best
    keep = None if cap is None else max(cap, _SEED)
    oa, ob = _ascending(-sa, keep), _ascending(sb, keep)
    a_pts, sa, b_pts, sb = a_pts[oa], sa[oa], b_pts[ob], sb[ob]
    for first in (True, False):
        w = best[0]
        na = int(np.searchsorted(-sa, -(sb[0] - w), side="left"))  # sa > sb.min - w
        if na == 0:
            break
        nb = int(np.searchsorted(sb, sa[0] + w, side="left"))  # sb < sa.max + w
        if nb == 0:
            break
        if first:
            na, nb = min(na, _SEED), min(nb, _SEED)
        elif cap is not None:
            na, nb = min(na, cap), min(nb, cap)
        A = X[a_pts[:na]].astype(np.float64)
        B = X[b_pts[:nb]].astype(np.float64)
        bsq = (B * B).sum(1)
        cb = core[b_pts[:nb]]
        step = max(1, _BLOCK // nb)
        for s in range(0, na, step):
            P = A[s : s + step]
            d2 = (P * P).sum(1)[:, None] + bsq[None, :] - 2.0 * P @ B.T
            mr = np.maximum(np.sqrt(np.maximum(d2, 0.0)), cb[None, :])
            mr = np.maximum(mr, core[a_pts[s : min(s + step, na)]][:, None])
            i, j = np.unravel_index(int(mr.argmin()), mr.shape)
            if mr[i, j] < best[0]:
                best = (float(mr[i, j]), int(a_pts[s + i]), int(b_pts[j]))
    if best[1] >= 0:  # the GEMM identity rounds; recompute the winner directly
        u, v = best[1], best[2]
        d = float(np.linalg.norm(X[u].astype(np.float64) - X[v].astype(np.float64)))
        best = (max(d, float(core[u]), float(core[v])), u, v)
    return best


def lightest_outgoing(
    X: np.ndarray,
    core: np.ndarray,
    comp: np.ndarray,
    query: np.ndarray,
    *,
    max_partners: int | None = None,
    cap: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lightest mutual-reachability edge from each component in ``query`` to any other.

    Parameters
    ----------
    X : ndarray (n, d)
    core : ndarray (n,) float64
    comp : ndarray (n,) int
        Component labels ``0..C-1``.
    query : ndarray of int
        Components to solve.
    max_partners, cap : int, optional
        Approximate search: only the nearest ``max_partners`` components by centroid, and at
        most ``cap`` points per side of a pair. ``None`` (both) is exact.

    Returns
    -------
    w, u, v : ndarray (len(query),)
        Edge weight and endpoints (``u`` inside the component); ``inf, -1, -1`` if none.
    """
    C = int(comp.max()) + 1
    counts = np.bincount(comp, minlength=C)
    order = np.argsort(comp, kind="stable")
    starts = np.r_[0, np.cumsum(counts)]
    cent = _centroid_sums(X, comp, C) / np.maximum(counts, 1)[:, None]
    csq = (cent * cent).sum(1)
    gap = np.sqrt(np.maximum(csq[:, None] + csq[None, :] - 2 * cent @ cent.T, 0.0))
    out_w = np.full(len(query), np.inf)
    out_u = np.full(len(query), -1, np.int64)
    out_v = np.full(len(query), -1, np.int64)
    for qi, A in enumerate(query):
        a_pts = order[starts[A] : starts[A + 1]]
        partners = np.argsort(gap[A])
        partners = partners[partners != A]
        if max_partners is not None:
            partners = partners[:max_partners]
        w, u, v = np.inf, -1, -1
        for B in partners:
            b_pts = order[starts[B] : starts[B + 1]]
            g = gap[A, B]
            # coincident centroids (g == 0) give no direction: everything is searched
            direction = (cent[B] - cent[A]) / g if g > 0 else None
            if direction is not None and cap is not None:
                # the pair reads at most keep points a side: those facing the other side
                pa, sa = _facing(X, a_pts, core, w, -direction, max(cap, _SEED))
                sa = -sa
                pb, sb = _facing(X, b_pts, core, w, direction, max(cap, _SEED))
            else:
                # only points with core < w can join by an edge lighter than w: project those
                pa, pb = a_pts[core[a_pts] < w], b_pts[core[b_pts] < w]
                if direction is None:
                    sa, sb = np.zeros(len(pa)), np.zeros(len(pb))
                else:
                    sa, sb = _project(X, pa, direction), _project(X, pb, direction)
            if len(pa) == 0 or len(pb) == 0:
                continue
            if sb.min() - sa.max() >= w:
                continue
            w2, u2, v2 = _pair_search(X, core, pa, sa, pb, sb, w, cap)
            if u2 >= 0 and w2 < w:
                w, u, v = w2, u2, v2
        out_w[qi], out_u[qi], out_v[qi] = w, u, v
    return out_w, out_u, out_v


def join_components(
    X: np.ndarray,
    core: np.ndarray,
    comp: np.ndarray,
    *,
    exact: bool = True,
    max_partners: int = 4,
    cap: int = 512,
) -> np.ndarray:
    """Edges that join a spanning forest's components into a tree, Borůvka style.

    Exact: each round every component adds its true lightest outgoing edge (so the forest
    plus these edges is an MST when the forest is part of one). Approximate: partners and
    points per pair limited by ``max_partners`` and ``cap``.

    Returns
    -------
    edges : ndarray (C - 1, 3) float64 ``(a, b, weight)``
    """
    _, lab = np.unique(comp, return_inverse=True)
    lab = lab.astype(np.int64)
    out: list[np.ndarray] = []
    while lab.max() > 0:
        C = int(lab.max()) + 1
        kw = {} if exact else {"max_partners": max_partners, "cap": cap}
        w, u, v = lightest_outgoing(X, core, lab, np.arange(C), **kw)
        ok = u >= 0
        if not ok.any():
            raise RuntimeError("component join found no outgoing edge")
        # Kruskal over the chosen edges (ranks keep zero weights) drops tie cycles
        cu, cv, cw = u[ok], v[ok], w[ok]
        rank = np.empty(len(cw))
        rank[np.lexsort((np.minimum(cu, cv), cw))] = np.arange(1, len(cw) + 1)
        g = coo_matrix((rank, (lab[cu], lab[cv])), shape=(C, C)).tocsr()
        forest = minimum_spanning_tree(g).tocoo()
        pos = np.empty(len(cw) + 1, np.int64)
        pos[rank.astype(np.int64)] = np.arange(len(cw))
        sel = pos[forest.data.astype(np.int64)]
        out.append(np.column_stack([cu[sel], cv[sel], cw[sel]]).astype(np.float64))
        _, merged = connected_components(forest, directed=False)
        lab = merged[lab]
    return np.concatenate(out) if out else np.zeros((0, 3))
