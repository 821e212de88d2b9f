"""All-points kNN graph on CPU by cell-grouped brute force (IVF with GEMM-shaped work).

HDBSCAN* needs every point's ``min_samples`` nearest neighbours, i.e. an all-points kNN
*graph*, not isolated queries. FAISS's ``IndexIVFFlat`` answers each query on its own and
scans its inverted lists with per-vector distance loops (~5 ns per pair on our 2-core
machine), while a flat GEMM search costs ~1.4 ns per pair. This module keeps IVF's idea --
only nearby k-means cells hold the neighbours -- but groups the queries by cell: all points
of a cell are searched together, as one ``faiss.knn`` (GEMM + heap), against the members of
the ``n_probe`` cells whose centroids are nearest to that cell's centroid. Work is
``n * (n / n_cells) * n_probe`` pairs at GEMM speed.

With ``exact=True`` each list is *certified* with the Voronoi bisector bound: a point ``p``
of cell ``a`` is at least ``(|p - c_b|^2 - |p - c_a|^2) / (2 |c_a - c_b|)`` away from
every point of cell ``b``; if the ``k``-th listed distance is within that bound for every
unprobed cell, the list is exact. The other points are searched against all the data. On
clustered data (where HDBSCAN* is used) most points certify and exact kNN costs little more
than the approximate graph.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from ops.phdbscan._exact_lists import CentredRows, bisector_bound, exact_group, search_all

__all__ = [
    "CellChunkSearch",
    "CellIndex",
    "MapChunks",
    "cell_knn",
    "default_cells",
    "wide_cells",
]

MapChunks = Callable[[Callable[[Any], Any], Iterable[Any]], Iterable[Any]]
"""``map``'s signature: ``map_chunks(fn, items)`` yields ``fn(item)`` for each item, in order."""

# A chunk of cells holds about this many rows at most, and there are at least _MIN_CHUNKS
# chunks where there are that many cells: enough tasks for a cluster's workers at any size,
# each large against the tens of milliseconds a remote task costs to start.
_CHUNK_ROWS = 16_384
_MIN_CHUNKS = 16


def _faiss() -> Any:
    import faiss

    return faiss


# The k from which FAISS keeps each query's candidates in a reservoir, partitioned when
# full, rather than in a heap. FAISS's default is 100; on this machine the two meet near
# k = 40 (a few hundred queries against 4-10k rows, d = 32), and at k = 58 the reservoir
# takes 16 against 18 ms (benchmarks/README.md).
_RESERVOIR_K = 40


@contextmanager
def _gemm_search() -> Iterator[None]:
    """FAISS's GEMM distances (``|x|^2 + |y|^2 - 2xy``) for every search batch in the block.

    The faiss-cpu wheels set ``distance_compute_blas_threshold`` to 128000 queries (FAISS's own
    default is 20), so our cell groups of a few hundred queries take the per-pair SIMD loop:
    9.0 against 5.6 ns a pair for 630 x 10k, k = 67, on this machine. The GEMM form rounds to
    about ``1e-7 |x|^2`` instead of ``1e-7 d^2``, so only searches whose candidates are
    re-ranked or approximate anyway use it; exact mode re-ranks its candidates in float64 and
    proves each list against that rounding (:func:`ops.phdbscan._exact_lists.exact_group`).
    Lists of ``_RESERVOIR_K`` and more are selected by a reservoir.
    """
    cvar = _faiss().cvar
    saved = cvar.distance_compute_blas_threshold, cvar.distance_compute_min_k_reservoir
    cvar.distance_compute_blas_threshold = 20
    cvar.distance_compute_min_k_reservoir = _RESERVOIR_K
    try:
        yield
    finally:
        cvar.distance_compute_blas_threshold, cvar.distance_compute_min_k_reservoir = saved


def _single_threaded() -> Any:
    """OpenMP and BLAS on one thread (the calling one's OpenMP, the process's BLAS).

    Multi-threaded GEMM splits its sums differently from single-threaded GEMM, so the same
    search on 2 threads and on 1 rounds differently; chunks always run on one thread.
    """
    return threadpool_limits(limits=1)


# Rows a cell holds on average above 1M rows, where the approximate graph's cell count
# follows ``n`` (``wide_cells``), and the cell count above which centroids are trained and
# rows assigned through a coarse level of ``sqrt(cells)`` groups (``_two_level_cells``).
_CELL_ROWS = 500
_FLAT_CELLS = 1024
# The coarse groups nearest a row, whose fine centroids it is compared with in the two-level
# assignment: with two, 99.3 % of rows at 3M land in their nearest fine centroid's cell.
_GROUP_PROBES = 2


def wide_cells(n: int) -> int:
    """Cells of the approximate graph above 200k rows and of the search for new points.

    ``2 sqrt(n)`` up to 1M rows (500 rows a cell there), then ``n / 500``: past 1M the cells
    stay the same size, so a query's candidates (8 probed cells of ~500 rows) stop growing.
    """
    return max(int(2 * math.sqrt(n)), n // _CELL_ROWS)


def default_cells(n: int, exact: bool) -> tuple[int, int]:
    """``(n_cells, n_probe)`` for ``n`` points.

    Approximate: ``sqrt(n)`` cells and 12 probes up to 200k rows (recall of the 51-NN 0.88 on
    20 32-d blobs at 100k, core distances within 0.5%); above, :func:`wide_cells` and 8
    probes: ``4 sqrt(n)`` candidates a query up to 1M rows (4,000 at 1M), a third of
    ``sqrt(n)`` cells x 12 probes, and about 4,000 past it, so the search grows as ``n`` above
    1M. Past 1,024 cells (262k rows) the centroids are trained and the rows assigned in two
    levels (:func:`_two_level_cells`): ``n sqrt(cells)`` distances instead of ``n cells``, 1.2
    instead of 6.5 s at 1M (benchmarks/README.md, "The kNN graph past 1M rows"). Exact:
    fewer, larger cells (``sqrt(n) / 2``) and 16 probes, so more points certify and fewer
    fall back to a full search.
    """
    if exact:
        return max(1, int(math.sqrt(n) / 2)), 16
    if n > 200_000:
        return wide_cells(n), 8
    return max(1, int(math.sqrt(n))), 12


def _training_rows(X: np.ndarray, L: int, seed: int) -> np.ndarray:
    """A seeded sample of ``64 L`` rows, at most ``max(100k, 40 L)``, to train ``L`` centroids.

    Cells need compactness only; training on more rows costs seconds at 1M rows and changes
    nothing measurable.
    """
    n = X.shape[0]
    m = min(64 * L, max(100_000, 40 * L))
    if n <= m:
        return X
    return X[np.sort(np.random.default_rng(seed).choice(n, m, replace=False))]


def _kmeans(rows: np.ndarray, L: int, seed: int, n_iter: int) -> np.ndarray:
    """``L`` k-means centroids trained on ``rows`` (at most 64 a centroid are used).

    FAISS warns on stderr below 39 rows a centroid; cells need compactness only, so no
    minimum is asked for and nothing is printed.
    """
    km = _faiss().Kmeans(
        rows.shape[1],
        L,
        niter=n_iter,
        seed=seed,
        max_points_per_centroid=64,
        min_points_per_centroid=1,
    )
    km.train(np.ascontiguousarray(rows))
    return np.ascontiguousarray(km.centroids, dtype=np.float32)


def _centroids(X: np.ndarray, L: int, seed: int, n_iter: int) -> np.ndarray:
    """Train ``L`` k-means centroids on :func:`_training_rows` of ``X``."""
    return _kmeans(_training_rows(X, L, seed), L, seed, n_iter)


def _two_level_cells(
    X: np.ndarray, L: int, seed: int, n_iter: int
) -> tuple[np.ndarray, np.ndarray]:
    """About ``L`` centroids and each row's cell, through ``sqrt(L)`` coarse groups.

    Flat k-means compares every training row with every centroid, and the assignment every
    row: ``n L`` distances, ``n^1.5`` when ``L`` grows with ``n``. Here the training rows are
    split among ``G = sqrt(L)`` coarse centroids, each group trains its share of the fine
    centroids on its own rows, and a row is compared with the ``G`` coarse centroids and then
    with the fine centroids of the ``_GROUP_PROBES`` groups nearest it: ``n (G + 2 L / G)``
    distances, a 25th of the flat ones at 3M rows. A row may land in a cell whose
    centroid is the second nearest (0.7 % of rows at 3M), which approximate search does not
    mind; the bisector bound of exact mode does, so exact mode assigns to the nearest
    centroid.

    Returns
    -------
    cent : ndarray (about L, d) float32
        Fine centroids, grouped by coarse group.
    assign : ndarray (n,) int64
        Each row's fine cell.
    """
    faiss = _faiss()
    groups = math.ceil(math.sqrt(L))
    rows = np.ascontiguousarray(_training_rows(X, L, seed))
    coarse = _centroids(rows, groups, seed, n_iter)
    row_group = faiss.knn(rows, coarse, 1)[1][:, 0]
    sizes = np.bincount(row_group, minlength=groups)
    # each group trains fine centroids in proportion to its rows, one at least where it has any
    quota = np.where(sizes > 0, np.maximum(1, np.rint(L * sizes / len(rows))), 0).astype(int)
    quota = np.minimum(quota, sizes)
    fine = [
        _kmeans(rows[row_group == g], int(quota[g]), seed, n_iter) for g in np.flatnonzero(quota)
    ]
    cent = np.concatenate(fine)
    first = np.r_[0, np.cumsum(quota)]  # group g's fine centroids: first[g] .. first[g + 1]
    near = np.sort(faiss.knn(X, coarse, min(_GROUP_PROBES, groups))[1], axis=1)
    # rows near the same groups are compared with the same centroids, in one search
    key = near @ groups ** np.arange(near.shape[1])
    by_key = np.argsort(key, kind="stable")
    bounds = np.r_[0, np.flatnonzero(np.diff(key[by_key])) + 1, len(key)]
    assign = np.empty(len(X), np.int64)

    def assign_rows(spans: tuple[int, int]) -> None:
        # a few thousand rows a search: one thread each, side by side, as in cell_knn
        with _gemm_search(), _single_threaded():
            for a in range(*spans):
                members = by_key[bounds[a] : bounds[a + 1]]
                cand = np.concatenate([np.arange(first[h], first[h + 1]) for h in near[members[0]]])
                if len(cand) == 0:  # groups that got no training rows, and no centroids
                    cand = np.arange(len(cent))
                assign[members] = cand[faiss.knn(X[members], cent[cand], 1)[1][:, 0]]

    n_threads = faiss.omp_get_max_threads()
    with _gemm_search(), _single_threaded(), ThreadPoolExecutor(n_threads) as pool:
        list(pool.map(assign_rows, _cell_chunks(bounds)))
    return cent, assign


def cell_knn(
    X: np.ndarray,
    k: int,
    *,
    n_cells: int | None = None,
    n_probe: int | None = None,
    exact: bool = False,
    seed: int = 0,
    n_iter: int = 8,
    stats: dict[str, Any] | None = None,
    map_chunks: MapChunks | None = None,
    on_index: Callable[[CellIndex], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Self-kNN graph of ``X``: the ``k`` nearest rows of every row (itself included).

    The rows are searched by chunks of cells (:class:`CellChunkSearch`, :func:`_cell_chunks`),
    each chunk through ``map_chunks``. A chunk makes the same FAISS calls on one thread
    wherever it runs, so the graph is the same, to the bit, for any ``map_chunks`` on the same
    kind of CPU (FAISS and BLAS pick their kernels by CPU).

    Parameters
    ----------
    X : ndarray (n, d)
        Searched as C-contiguous float32; exact lists rank the rows as given.
    k : int
        Neighbours per row, the row itself normally first.
    n_cells, n_probe : int, optional
        k-means cells and probed cells per cell; see :func:`default_cells`.
    exact : bool
        Certify every list (bisector bound) and search uncertified rows exhaustively.
    seed, n_iter
        k-means seed and iterations.
    stats : dict, optional
        Receives ``n_cells``, ``n_probe`` and ``uncertified`` (exact only).
    map_chunks : callable, optional
        ``map``'s signature, results in input order: runs the chunks, for instance as
        parallel tasks of a cluster. Default: a pool of as many threads as OpenMP would use,
        in this process.
    on_index : callable, optional
        Called with the fitted :class:`CellIndex`, which can serve new points too; not
        called when ``X`` is searched whole, nor in exact mode, whose cells hold centred rows.

    Returns
    -------
    dist : ndarray (n, k) float32, float64 when exact
        Euclidean distances, ascending; ``inf`` where fewer than ``k`` were found. Exact
        lists are ranked by float64 distances between the rows as given (ties in the order
        FAISS found them), as hdbscan decides.
    idx : ndarray (n, k) int64
        ``-1`` where missing.
    """
    faiss = _faiss()
    n = X.shape[0]
    k = int(k)
    L0, P0 = default_cells(n, exact)
    L = int(min(n_cells or L0, max(1, n // max(k, 8))))
    probe = int(min(n_probe or P0, L))
    dist = np.full((n, k), np.inf, np.float64 if exact else np.float32)
    idx = np.full((n, k), -1, np.int64)
    # exact: the GEMM's rounding grows with |x|^2, so the cells hold centred rows (fewer
    # lists fall back to a search of all rows); those serve no new points
    rows = CentredRows.of(X) if exact else None
    X = rows.centred if rows is not None else np.ascontiguousarray(X, dtype=np.float32)
    if L <= 1 or probe >= L:
        if rows is not None:
            with _gemm_search():
                search_all(rows, np.arange(n), rows, k, dist, idx)
        else:
            D, nb = faiss.knn(X, X, min(k, n))
            dist[:, : nb.shape[1]] = np.sqrt(np.maximum(D, 0))
            idx[:, : nb.shape[1]] = nb
        return _finish(dist, idx, stats, L, probe, 0)
    index = CellIndex(L, probe, seed, n_iter).fit(X, nearest=exact)
    if on_index is not None and not exact:
        on_index(index)
    chunks = _cell_chunks(index.starts)
    search = CellChunkSearch(index, k, rows)
    n_threads = faiss.omp_get_max_threads()
    n_unc = 0
    # Each chunk sets these too; holding them here as well means no chunk on a thread of this
    # process restores the process-wide ones while another chunk still searches.
    with _gemm_search(), _single_threaded(), ThreadPoolExecutor(n_threads) as pool:
        found = pool.map(search, chunks) if map_chunks is None else map_chunks(search, chunks)
        # each chunk's lists put in place as they come, and dropped: every chunk's held
        # until the last was a second copy of the graph (576 MB at 3M x 16)
        for (first, last), (chunk_dist, chunk_idx, chunk_unc) in zip(chunks, found, strict=True):
            rows = index.order[index.starts[first] : index.starts[last]]
            dist[rows], idx[rows] = chunk_dist, chunk_idx
            n_unc += chunk_unc
    return _finish(dist, idx, stats, L, probe, n_unc)


def _finish(
    dist: np.ndarray,
    idx: np.ndarray,
    stats: dict[str, Any] | None,
    L: int,
    probe: int,
    n_unc: int,
) -> tuple[np.ndarray, np.ndarray]:
    dist[idx < 0] = np.inf
    if stats is not None:
        stats.update({"n_cells": L, "n_probe": probe, "uncertified": n_unc})
    return dist, idx


def _cell_chunks(starts: np.ndarray) -> list[tuple[int, int]]:
    """Split the cells into ``(first, last)`` ranges holding about equal numbers of rows.

    ``starts`` are the cells' offsets in the cell-sorted row order (``CellIndex.starts``).
    """
    n_cells, n = len(starts) - 1, int(starts[-1])
    n_chunks = min(n_cells, max(_MIN_CHUNKS, -(-n // _CHUNK_ROWS)))
    cuts = np.searchsorted(starts, np.arange(1, n_chunks) * n / n_chunks)
    bounds = np.unique(np.r_[0, cuts, n_cells]).tolist()
    return list(itertools.pairwise(bounds))


@dataclass(frozen=True)
class CellChunkSearch:
    """kNN lists of the rows of a range of cells: the unit of work :func:`cell_knn` maps.

    Picklable, holding the data and the cells, so the chunks can run in other processes or
    on other machines (``infra.ray.ray_map`` puts it in Ray's object store once).

    Parameters
    ----------
    index : CellIndex
        The fitted cells of all the rows.
    k : int
        Neighbours per row.
    exact : CentredRows or None
        The rows (``index.X`` is their centred copy) when each list is to be exact: ranked
        by float64 distances, certified with the bisector bound, and searched against all
        rows where it is not; ``None`` for approximate lists.
    """

    index: CellIndex
    k: int
    exact: CentredRows | None

    def __call__(self, cells: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, int]:
        """Search the rows of cells ``first .. last - 1``.

        Parameters
        ----------
        cells : (int, int)
            ``(first, last)``.

        Returns
        -------
        dist : ndarray (m, k) float32, float64 when exact
            The rows' lists, in cell-sorted order (``index.order[starts[first]:starts[last]]``).
        idx : ndarray (m, k) int64
        uncertified : int
            Rows whose list was searched again against all rows.
        """
        index, k, rows = self.index, self.k, self.exact
        X, starts = index.X, index.starts
        first, last = cells
        lo = starts[first]
        chunk = index.order[lo : starts[last]]
        if rows is None:
            Q = X[chunk]
            dist = np.full((len(Q), k), np.inf, np.float32)
            idx = np.full((len(Q), k), -1, np.int64)
            with _gemm_search(), _single_threaded():
                for a in range(first, last):
                    q = np.arange(starts[a] - lo, starts[a + 1] - lo)
                    if len(q):
                        _search_group(Q, q, X, index.probed(a)[1], k, dist, idx)
            return dist, idx, 0
        queries = rows.take(chunk)
        dist = np.full((len(chunk), k), np.inf)
        idx = np.full((len(chunk), k), -1, np.int64)
        c_sq = (index.cent.astype(np.float64) ** 2).sum(1)
        # the bound holds for centred rows; given rows may lie nearer by the two rows' shifts
        most_shift = rows.shift.max()
        uncertified: list[np.ndarray] = []
        with _gemm_search(), _single_threaded():
            for a in range(first, last):
                q = np.arange(starts[a] - lo, starts[a + 1] - lo)
                if len(q) == 0:
                    continue
                probed, db = index.probed(a)
                kth = exact_group(queries, q, rows, db, k, dist, idx)
                bound = bisector_bound(queries.centred[q], index.cent, a, probed, c_sq)
                bound -= queries.shift[q] + most_shift
                uncertified.append(q[~(kth * (1 + 1e-5) <= bound)])
            redo = np.concatenate(uncertified) if uncertified else np.zeros(0, np.int64)
            if len(redo):
                search_all(queries, redo, rows, k, dist, idx)
        return dist, idx, len(redo)


class CellIndex:
    """Queries from outside the data, grouped by k-means cell: :func:`cell_knn` for new points.

    ``IndexIVFFlat`` scans its lists one query at a time; here the queries nearest to one
    cell are searched together, as one GEMM-shaped ``faiss.knn``, against the members of
    the ``n_probe`` cells around it. For scoring (one attachment point per new transaction)
    this is what makes assignment a few GEMMs instead of ``m`` list scans.

    >>> index = CellIndex(n_cells=32, n_probe=8).fit(np.random.rand(5000, 16))
    >>> dist, idx = index.search(np.random.rand(10, 16), 5)
    """

    def __init__(self, n_cells: int, n_probe: int, seed: int = 0, n_iter: int = 8) -> None:
        self.n_cells, self.n_probe, self.seed, self.n_iter = n_cells, n_probe, seed, n_iter

    def fit(self, X: np.ndarray, nearest: bool = False) -> CellIndex:
        """Train the cells on ``X`` and sort its rows into them.

        Parameters
        ----------
        X : ndarray (n, d)
        nearest : bool
            Put every row in its nearest centroid's cell, as the bisector bound needs;
            otherwise, past 1,024 cells, rows and centroids meet through a coarse level
            (:func:`_two_level_cells`).
        """
        self.X = np.ascontiguousarray(X, dtype=np.float32)
        L = int(min(self.n_cells, max(1, len(self.X) // 8)))
        if L > _FLAT_CELLS and not nearest:
            self.cent, assign = _two_level_cells(self.X, L, self.seed, self.n_iter)
            L = len(self.cent)
        else:
            self.cent = _centroids(self.X, L, self.seed, self.n_iter)
            assign = _faiss().knn(self.X, self.cent, 1)[1][:, 0]
        self.order = np.argsort(assign, kind="stable")
        self.starts = np.searchsorted(assign[self.order], np.arange(L + 1))
        self.near = _faiss().knn(self.cent, self.cent, min(self.n_probe, L))[1]
        return self

    def to_dict(self, prefix: str = "cells_") -> dict[str, np.ndarray]:
        """The fitted cells as arrays, to save beside a model (the data is the model's own)."""
        return {
            prefix + "params": np.array([self.n_cells, self.n_probe, self.seed, self.n_iter]),
            prefix + "cent": self.cent,
            prefix + "order": self.order,
            prefix + "starts": self.starts,
            prefix + "near": self.near,
        }

    @classmethod
    def from_dict(
        cls, arrays: Mapping[str, np.ndarray], X: np.ndarray, prefix: str = "cells_"
    ) -> CellIndex:
        """The index :meth:`to_dict` saved, over the data ``X`` it was fitted on: no k-means."""
        n_cells, n_probe, seed, n_iter = (int(v) for v in arrays[prefix + "params"])
        index = cls(n_cells, n_probe, seed, n_iter)
        index.X = np.ascontiguousarray(X, dtype=np.float32)
        for name in ("cent", "order", "starts", "near"):
            setattr(index, name, np.asarray(arrays[prefix + name]))
        return index

    def same_cells(self, other: CellIndex) -> bool:
        """Whether ``other`` fitted on the same data gives these very cells and probes."""
        return (self.n_cells, self.n_probe, self.seed, self.n_iter) == (
            other.n_cells,
            other.n_probe,
            other.seed,
            other.n_iter,
        )

    def probed(self, a: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the cells probed around cell ``a`` (``a`` itself among them) and their rows."""
        cells = self.near[a][self.near[a] >= 0]
        if a not in cells:
            cells = np.r_[a, cells[:-1]]
        rows = np.concatenate([self.order[self.starts[c] : self.starts[c + 1]] for c in cells])
        return cells, rows

    def search(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``k`` nearest rows per query: float32 distances (``inf`` where missing), ids (``-1``)."""
        faiss = _faiss()
        Q = np.ascontiguousarray(Q, dtype=np.float32)
        dist = np.full((len(Q), k), np.inf, np.float32)
        idx = np.full((len(Q), k), -1, np.int64)
        home = faiss.knn(Q, self.cent, 1)[1][:, 0]
        by_cell = np.argsort(home, kind="stable")
        bounds = np.searchsorted(home[by_cell], np.arange(len(self.cent) + 1))

        def search_cells(cells: tuple[int, int]) -> None:
            # Each group is a few hundred queries: FAISS's threads cost more to wake than
            # they share, so the groups run one thread each, side by side, as in cell_knn.
            with _gemm_search(), _single_threaded():
                for a in range(*cells):
                    if bounds[a + 1] > bounds[a]:
                        q = by_cell[bounds[a] : bounds[a + 1]]
                        _search_group(Q, q, self.X, self.probed(a)[1], k, dist, idx)

        # candidates for new points, re-ranked in float64 by the caller; groups write
        # disjoint rows of dist and idx
        n_threads = faiss.omp_get_max_threads()
        with _gemm_search(), _single_threaded(), ThreadPoolExecutor(n_threads) as pool:
            list(pool.map(search_cells, _cell_chunks(bounds)))
        return dist, idx


def _search_group(
    Q: np.ndarray,
    q: np.ndarray,
    X: np.ndarray,
    db: np.ndarray,
    k: int,
    dist: np.ndarray,
    idx: np.ndarray,
) -> int:
    """Search rows ``q`` of ``Q`` together (one GEMM) against rows ``db`` of ``X``.

    Results go into ``dist``/``idx``; returns how many neighbours each row got.
    """
    kk = min(k, len(db))
    if kk:
        D, nb = _faiss().knn(Q[q], X[db], kk)
        dist[q, :kk] = np.sqrt(np.maximum(D, 0))
        idx[q, :kk] = np.where(nb >= 0, db[np.maximum(nb, 0)], -1)
    return kk
