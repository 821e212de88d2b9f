"""Minimum spanning tree of the HDBSCAN* mutual-reachability graph, seeded by a kNN graph.

HDBSCAN* (Campello, Moulavi & Sander 2013; Campello et al. 2015) needs an MST of the
*complete* mutual-reachability graph ``mr(a, b) = max(core(a), core(b), d(a, b))``. A kNN
graph alone does not contain that MST in general and may even be disconnected, so this
module runs Borůvka's algorithm where each component's lightest outgoing edge comes from
the kNN lists when that can be *certified*, and from an exact pruned search otherwise:

* for a point ``p`` whose exact kNN list ends at distance ``d_k(p)``, every point outside
  the list has ``mr >= b(p) = max(core(p), d_k(p))``; if the best listed edge leaving
  ``p``'s component is no heavier than ``b(p)`` for every ``p`` in it, the kNN candidate is
  the true lightest edge (cut property);
* when the uncertified points lie in a few (cluster-sized) components, each point's
  distance to every other component is bounded from below by projections on the lines
  between component centroids (:func:`_projection_bounds`); a few points of lowest bound
  per component are searched first against the component's complement (FAISS flat), and
  their edges prune the rest;
* what remains is searched exactly over a one-level partition of the data (k-means cells
  with centroid, radius and minimum core distance), pruning a cell pair whenever
  ``max(core_min_a, core_min_b, |c_a - c_b| - r_a - r_b)`` cannot beat the best edge
  already known. This is the cell analogue of the dual-tree Borůvka of McInnes & Healy
  (2017) with FAISS-style flat blocks instead of kd-tree leaves.

Borůvka with ties is still correct when each component adds one lightest outgoing edge
and cycle-closing edges are dropped, which is what the per-round Kruskal over the chosen
edges does. The approximate tree (the FinDeepBehaviorCluster trade-off) is built elsewhere:
:mod:`ops.phdbscan._knn_forest` and :mod:`ops.phdbscan._component_join`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

from ops.phdbscan._cell_partition import CellPartition, brute_index, cell_round

__all__ = ["default_graph_k", "mutual_reachability_mst"]


def _centroids(X: np.ndarray, comp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Component centroids (float64) and each point's row among them."""
    comps, inv = np.unique(comp, return_inverse=True)
    cent = np.zeros((len(comps), X.shape[1]))
    np.add.at(cent, inv, X.astype(np.float64))
    cent /= np.bincount(inv)[:, None]
    return cent, inv


def _lowest_per_component(
    pts: np.ndarray, comp: np.ndarray, score: np.ndarray, size: int
) -> np.ndarray:
    """Per component, the ``size`` points of ``pts`` with the lowest ``score``."""
    pc = comp[pts]
    order = np.lexsort((score, pc))
    sorted_pc = pc[order]
    starts = np.r_[0, np.flatnonzero(sorted_pc[1:] != sorted_pc[:-1]) + 1]
    rank = np.empty(len(pts), np.int64)
    rank[order] = np.arange(len(pts)) - np.repeat(starts, np.diff(np.r_[starts, len(pts)]))
    return pts[rank < size]


def _projection_groups(comp: np.ndarray, pts: np.ndarray, max_groups: int) -> np.ndarray:
    """Group points for :func:`_projection_bounds`, refining ``comp``.

    Each component is a group when there are at most ``max_groups``; else the components of
    ``pts`` are, plus one group for the rest, whose bound is weaker (it spans scattered
    pieces) but as valid.
    """
    own = np.unique(comp)
    if len(own) > max_groups:
        own = np.unique(comp[pts])
    slot = np.minimum(np.searchsorted(own, comp), len(own) - 1)
    return np.where(own[slot] == comp, slot, len(own))


def _projection_bounds(
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
    ``n x groups x d``.
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
    proj = np.empty((X.shape[0], m))  # proj[x, b] = <x, u(group(x) -> b)>
    top = np.full((m, m), -np.inf)  # top[b, a] = max over q in b of <q, u(b -> a)>
    for a in range(m):
        rows = np.flatnonzero(inv == a)
        proj[rows] = X[rows].astype(np.float64) @ unit[a].T
        top[a] = proj[rows].max(0)
    lower = -top.T[inv[pts]] - proj[pts]  # [p, b]: min over q in b of <q, u(a -> b)> - <p, u>
    lower[comp[pts][:, None] == group_comp[None, :]] = np.inf
    # float64 rounding of the projections is ~1e-15 relative; shrink well past it
    return np.maximum(lower.min(1), 0.0) * (1 - 1e-9)


def _complement_search(
    X: np.ndarray, pts: np.ndarray, comp: np.ndarray, core: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Find the ``k`` nearest points of other components for each of ``pts``, exactly.

    Brute force: FAISS flat, or torch on a GPU.

    Returns ``(idx, mr, radius)``: neighbour ids (``-1`` padded), their float64 mutual
    reachability, and a lower bound on the distance to any unlisted point of another
    component (``inf`` when the list holds all of them).
    """
    out_q = np.full((len(pts), k), -1, np.int64)
    out_w = np.full((len(pts), k), np.inf)
    radius = np.full(len(pts), np.inf)
    X32 = np.ascontiguousarray(X, dtype=np.float32)
    pc = comp[pts]
    for c in np.unique(pc):
        sel = np.flatnonzero(pc == c)
        others = np.flatnonzero(comp != c)
        kk = min(k, len(others))
        d32, loc = brute_index(X32[others]).search(X32[pts[sel]], kk)
        q = others[loc]
        diff = X[q].astype(np.float64) - X[pts[sel]][:, None, :].astype(np.float64)
        d = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
        out_q[sel, :kk] = q
        out_w[sel, :kk] = np.maximum(np.maximum(d, core[q]), core[pts[sel]][:, None])
        if kk < len(others):
            # float32 list radius, shrunk by a relative 1e-5 so rounding cannot certify
            radius[sel] = d32[:, -1].astype(np.float64) * (1 - 1e-5)
    return out_q, out_w, radius


class _ComplementLists:
    """Each searched point's nearest other-component points (ids, mutual reachability)."""

    def __init__(self, n: int, k: int) -> None:
        self.q = np.full((0, k), -1, np.int64)  # allocated by the first search: n x k
        self.w = np.full((0, k), np.inf)
        self.has = np.zeros(n, bool)

    def record(self, pts: np.ndarray, q: np.ndarray, w: np.ndarray) -> None:
        if self.q.shape[0] == 0:
            self.q = np.full((len(self.has), q.shape[1]), -1, np.int64)
            self.w = np.full((len(self.has), q.shape[1]), np.inf)
        self.q[pts], self.w[pts] = q, w
        self.has[pts] = True


def _complement_round(
    X: np.ndarray,
    pts: np.ndarray,
    comp: np.ndarray,
    core: np.ndarray,
    k: int,
    ext: _ComplementLists,
    bound: np.ndarray,
    wp: np.ndarray,
    qp: np.ndarray,
) -> None:
    """Search ``pts`` against their complements.

    Records the lists, raises ``bound`` to each list's radius and lowers the per-point best
    edges ``wp``/``qp`` in place.
    """
    if not len(pts):
        return
    lq, lw, rad = _complement_search(X, pts, comp, core, k)
    ext.record(pts, lq, lw)
    bound[pts] = np.maximum(bound[pts], rad)
    _lower_best(pts, lq, lw, wp, qp)


def _lower_best(
    pts: np.ndarray, lq: np.ndarray, lw: np.ndarray, wp: np.ndarray, qp: np.ndarray
) -> None:
    """Where a list ``(lq, lw)`` of ``pts`` holds a lighter edge than ``wp``, take it."""
    j = lw.argmin(1)
    w = lw[np.arange(len(pts)), j]
    better = w < wp[pts]
    wp[pts[better]] = w[better]
    qp[pts[better]] = lq[np.arange(len(pts)), j][better]


def _per_component_best(
    comp: np.ndarray, ncomp: int, w: np.ndarray, u: np.ndarray, v: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lightest candidate edge per component, counting each edge for both endpoints."""
    ok = v >= 0
    cu, cv = comp[u[ok]], comp[v[ok]]
    keys = np.concatenate([cu, cv])
    ww = np.concatenate([w[ok], w[ok]])
    uu = np.concatenate([u[ok], v[ok]])
    vv = np.concatenate([v[ok], u[ok]])
    order = np.lexsort((ww, keys))
    keys_s = keys[order]
    first = np.r_[True, keys_s[1:] != keys_s[:-1]] if len(keys_s) else np.zeros(0, bool)
    bw = np.full(ncomp, np.inf)
    bu = np.full(ncomp, -1, np.int64)
    bv = np.full(ncomp, -1, np.int64)
    c = keys_s[first]
    bw[c] = ww[order][first]
    bu[c] = uu[order][first]
    bv[c] = vv[order][first]
    return bw, bu, bv


def mutual_reachability_mst(
    X: np.ndarray,
    knn_dist: np.ndarray,
    knn_idx: np.ndarray,
    core: np.ndarray,
    *,
    knn_is_exact: bool = True,
    n_cells: int | None = None,
    seed: int = 0,
    stats: dict[str, Any] | None = None,
    max_complement_comps: int = 64,
    complement_k: int = 16,
    seed_size: int = 16,
) -> np.ndarray:
    """Borůvka MST of the complete mutual-reachability graph.

    Parameters
    ----------
    X : ndarray (n, d)
    knn_dist, knn_idx : ndarray (n, k)
        Neighbours of each point *excluding itself* (see :func:`exact_knn_rows`), ascending,
        float64 distances, ``-1`` for missing entries.
    core : ndarray (n,) float64
        Core distances.
    knn_is_exact : bool
        Whether the lists are exact kNN; if not, certification cannot use list radii and
        every uncertain point is searched.
    n_cells, seed
        :class:`CellPartition` settings.
    stats : dict, optional
        Filled with per-round diagnostics (rounds, searched points).
    max_complement_comps : int
        Rounds whose uncertain points span at most this many components search each
        component against its complement (FAISS flat) instead of the cell partition.
    complement_k : int
        List length of complement searches; certification falls back to cells if short.
    seed_size : int
        Per component, how many points of lowest projection bound are searched first; their
        edges prune the rest. At 50k x 32 blobs, 16 left 1.4 s of tree search, 512 left 11 s.

    Returns
    -------
    mst : ndarray (n - 1, 3) float64
        Rows ``(a, b, weight)`` in no particular order.
    """
    n = X.shape[0]
    if n <= 1:
        return np.zeros((0, 3))
    k = knn_idx.shape[1]
    rows = np.arange(n)
    valid = knn_idx >= 0
    safe_idx = np.where(valid, knn_idx, 0)
    W = np.maximum(np.maximum(core[:, None], core[safe_idx]), knn_dist)
    W[~valid] = np.inf
    # b(p): lower bound on mr to any point not in p's list
    if k >= n - 1 or not knn_is_exact:
        last = np.full(n, np.inf if k >= n - 1 else -np.inf)
    else:
        last = knn_dist[:, -1]
    bound = np.maximum(core, last)

    comp = np.arange(n)
    ncomp = n
    edges_u: list[np.ndarray] = []
    edges_v: list[np.ndarray] = []
    edges_w: list[np.ndarray] = []
    cells: CellPartition | None = None
    info: dict[str, Any] = {"rounds": 0, "searched": [], "projection_pruned": 0}
    # lists of nearest *other-component* points found by complement searches; they stay
    # valid (and their radius stays a bound) as components only grow
    ext = _ComplementLists(n, complement_k)
    # projection groups; the components of the first round with few enough stay the groups
    groups, whole_groups = comp, False
    while ncomp > 1:
        info["rounds"] += 1
        Wm = np.where(comp[safe_idx] == comp[:, None], np.inf, W)
        j = Wm.argmin(1)
        wp = Wm[rows, j]
        qp = np.where(np.isfinite(wp), knn_idx[rows, j], -1)
        if ext.has.any():
            e = np.flatnonzero(ext.has)
            Em = np.where(comp[np.maximum(ext.q[e], 0)] == comp[e][:, None], np.inf, ext.w[e])
            _lower_best(e, ext.q[e], Em, wp, qp)
        bw, _, _ = _per_component_best(comp, ncomp, wp, rows, qp)
        need = bound < bw[comp]
        pts = np.flatnonzero(need)
        info["searched"].append(len(pts))
        if len(pts):
            qcomps = np.unique(comp[pts])
            if len(qcomps) <= max_complement_comps:
                # few (typically cluster-sized) components: in high dimension no spatial bound
                # separates them (distances concentrate), so search each component's points
                # against everything outside it with FAISS and certify from the list radius
                if not whole_groups:  # once every component is a group, keep those
                    groups = _projection_groups(comp, pts, max_complement_comps)
                    whole_groups = ncomp <= max_complement_comps
                bound[pts] = np.maximum(bound[pts], _projection_bounds(X, pts, comp, groups))
                # the most promising points first: their edges let the bound prune the rest
                first = _lowest_per_component(pts, comp, bound[pts], seed_size)
                _complement_round(X, first, comp, core, complement_k, ext, bound, wp, qp)
                bw, _, _ = _per_component_best(comp, ncomp, wp, rows, qp)
                rest = np.setdiff1d(pts, first, assume_unique=True)
                rest = rest[bound[rest] < bw[comp[rest]]]
                _complement_round(X, rest, comp, core, complement_k, ext, bound, wp, qp)
                info["projection_pruned"] += len(pts) - len(first) - len(rest)
                pts = np.r_[first, rest]
                pts = pts[wp[pts] > bound[pts]]
            if len(pts):
                if cells is None:
                    cells = CellPartition(X, core, n_cells=n_cells, seed=seed)
                cell_round(cells, pts, comp, core, wp, qp, ncomp)
        bw, bu, bv = _per_component_best(comp, ncomp, wp, rows, qp)
        has = bu >= 0
        if not has.any():
            raise RuntimeError("Borůvka round found no outgoing edge; graph search failed")
        cu, cv, cw = bu[has], bv[has], bw[has]
        a, b = comp[cu], comp[cv]
        # Kruskal over the chosen edges removes tie cycles; ranks keep zero weights
        # (duplicates) from vanishing in scipy's sparse MST
        rank = np.empty(len(cw))
        rank[np.lexsort((np.minimum(cu, cv), cw))] = np.arange(1, len(cw) + 1)
        g = coo_matrix((rank, (a, b)), shape=(ncomp, ncomp)).tocsr()
        forest = minimum_spanning_tree(g).tocoo()
        # map accepted (comp, comp, rank) back to edges
        keep_rank = forest.data.astype(np.int64)
        pos = np.empty(len(cw) + 1, np.int64)
        pos[rank.astype(np.int64)] = np.arange(len(cw))
        sel = pos[keep_rank]
        edges_u.append(cu[sel])
        edges_v.append(cv[sel])
        edges_w.append(cw[sel])
        _, lab = connected_components(forest, directed=False)
        comp = lab[comp]
        ncomp = int(lab.max()) + 1
    if stats is not None:
        stats.update(info)
    mst = np.column_stack(
        [np.concatenate(edges_u), np.concatenate(edges_v), np.concatenate(edges_w)]
    ).astype(np.float64)
    if mst.shape[0] != n - 1:
        raise RuntimeError(f"MST has {mst.shape[0]} edges, expected {n - 1}")
    return mst


def default_graph_k(min_samples: int, n: int) -> int:
    """Choose the kNN list length (self included) for the seed graph.

    ``min_samples + 1`` is the minimum for core distances; at least 16, since lists shorter
    than that certify few Borůvka edges for small ``min_samples``. Longer lists stopped
    paying once the projection bound pruned the searches between blobs: at 100k x 32 blobs
    (``min_samples`` 50) lists of 67 cost 1 s more than 51 and gave the same tree.
    """
    return int(min(n, max(min_samples + 1, 16)))
