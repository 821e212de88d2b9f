"""The cell-grouped kNN graph's cells: two levels past ``_FLAT_CELLS``, flat up to it."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from ops.phdbscan import _knn_graph
from ops.phdbscan._knn_graph import CellIndex, cell_knn, default_cells, wide_cells

faiss = pytest.importorskip("faiss")

MANY = _knn_graph._FLAT_CELLS + 500  # enough cells for the two-level path
X, _ = make_blobs(16 * MANY, 8, centers=40, cluster_std=2.0, random_state=0)
X = X.astype(np.float32)


def _cell_of_rows(index: CellIndex) -> np.ndarray:
    cell = np.empty(len(index.X), np.int64)
    cell[index.order] = np.repeat(np.arange(len(index.starts) - 1), np.diff(index.starts))
    return cell


def _nearest_centroid(index: CellIndex) -> np.ndarray:
    return faiss.knn(index.X, index.cent, 1)[1][:, 0]


def test_two_level_cells_sort_every_row_near_its_centroid() -> None:
    index = CellIndex(MANY, 8).fit(X)
    assert abs(len(index.cent) - MANY) <= 0.05 * MANY  # about the cells asked for
    assert np.array_equal(np.sort(index.order), np.arange(len(X)))  # every row, once
    cell = _cell_of_rows(index)
    # a row may land in a neighbouring centroid's cell, but rarely
    assert (cell == _nearest_centroid(index)).mean() >= 0.9


def test_nearest_assignment_past_the_flat_cells() -> None:
    """Exact mode's bisector bound needs each row in its nearest centroid's cell."""
    index = CellIndex(MANY, 8).fit(X, nearest=True)
    assert len(index.cent) == MANY
    assert np.array_equal(_cell_of_rows(index), _nearest_centroid(index))


def test_graph_on_two_level_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = np.random.default_rng(0).choice(len(X), 400, replace=False)
    exact = np.linalg.norm(X[rows, None, :].astype(np.float64) - X[None, :, :], axis=2)
    ref_i = np.argsort(exact, axis=1)[:, :10]
    ref_d = np.take_along_axis(exact, ref_i, 1)
    stats: dict = {}
    d, _ = cell_knn(X, 10, exact=True, n_cells=MANY, n_probe=4, stats=stats)
    assert stats["n_cells"] == MANY
    np.testing.assert_allclose(d[rows], ref_d, rtol=1e-5, atol=1e-5)  # certified: exact

    def recall() -> float:
        i = cell_knn(X, 10, n_cells=MANY, n_probe=8)[1][rows]
        return np.mean([len(np.intersect1d(a, b)) / 10 for a, b in zip(i, ref_i, strict=True)])

    two_level = recall()
    monkeypatch.setattr(_knn_graph, "_FLAT_CELLS", 10 * MANY)
    assert two_level >= recall() - 0.02  # as good as cells with every row at its nearest


def test_candidates_a_query_stop_growing_past_1m_rows() -> None:
    assert wide_cells(1_000_000) == 2_000  # 2 sqrt(n) up to 1M: the graphs measured there
    for n in (1_000_000, 3_000_000, 30_000_000):
        cells, probes = default_cells(n, exact=False)
        assert probes * n / cells <= 4_000


@pytest.mark.parametrize("world", ["far from the origin", "integer ties", "no structure"])
def test_exact_lists_are_the_float64_nearest(world: str) -> None:
    """GEMM candidates re-ranked in float64 and proved, or searched again: exact either way.

    Far from the origin the GEMM's rounding (of ``|x|^2``) is large; integer points tie at
    the k-th distance beyond the candidates; 32 unclustered dimensions defeat the cells. The
    last two fall back on a search of every row.
    """
    rng = np.random.default_rng(1)
    if world == "far from the origin":
        Y = make_blobs(6000, 8, centers=12, random_state=1)[0] + 1000.0
    elif world == "integer ties":
        Y = rng.integers(0, 4, size=(6000, 6)).astype(float)
    else:
        Y = rng.normal(size=(6000, 32))
    Y = Y.astype(np.float32)
    stats: dict = {}
    dist, idx = cell_knn(Y, 12, exact=True, n_cells=40, n_probe=6, stats=stats)
    assert (stats["uncertified"] > 0) == (world != "far from the origin")
    rows = rng.choice(len(Y), 300, replace=False)
    Y64 = Y.astype(np.float64)
    for r in rows:
        true = np.sort(np.linalg.norm(Y64 - Y64[r], axis=1))[:12]
        listed = np.linalg.norm(Y64[idx[r]] - Y64[r], axis=1)
        np.testing.assert_array_equal(np.sort(listed), true)  # the same distances: exact
        np.testing.assert_allclose(dist[r], true, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("offset, dtype", [(0.0, np.float32), (1e4, np.float64), (1e6, np.float64)])
def test_exact_lists_rank_the_rows_as_given(offset: float, dtype: type) -> None:
    """Exact lists are the nearest rows in float64 of the input, far from the origin too.

    The cells search centred float32 rows, but the lists must rank the rows as given: a
    float64 input far from the origin has distances float32 would not resolve.
    """
    from scipy.spatial.distance import cdist

    Y, _ = make_blobs(3000, 8, centers=6, random_state=1)
    Y = (Y + offset).astype(dtype)
    dist, idx = cell_knn(Y, 12, exact=True, n_cells=30, n_probe=4)
    assert dist.dtype == np.float64
    full = cdist(Y.astype(np.float64), Y.astype(np.float64))
    np.testing.assert_array_equal(dist, np.sort(full, axis=1)[:, :12])
    np.testing.assert_array_equal(np.take_along_axis(full, idx, 1), dist)
