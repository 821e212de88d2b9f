"""Loops over rows in blocks on threads: the same result as one pass over all rows."""

from __future__ import annotations

import numpy as np
import pytest

from ops.phdbscan._knn_refine import refine_float64, without_self
from ops.phdbscan._prims_order import tied_list_edges
from ops.phdbscan._row_blocks import BLOCK_ROWS, map_row_blocks

N = 2 * BLOCK_ROWS + 123  # three blocks, the last a partial one


@pytest.mark.parametrize("n", [0, 5, BLOCK_ROWS, N])
def test_blocks_cover_the_rows_once_in_order(n: int) -> None:
    blocks = map_row_blocks(lambda rows: np.arange(n)[rows], n)
    assert np.array_equal(np.concatenate([np.zeros(0, int), *blocks]), np.arange(n))


def _lists(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer points (exact duplicates and distance ties) and shuffled neighbour lists."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 6, size=(N, 3)).astype(np.float32)
    idx = rng.integers(0, N, size=(N, 7))
    idx[::3, 2] = np.arange(N)[::3]  # the point itself, listed in some rows only
    idx[::5, 6] = -1
    return X, idx


def test_float64_reranking_matches_numpy_across_blocks() -> None:
    X, idx = _lists(0)
    dist, out = refine_float64(X, idx)
    for r in (0, 1, 3, BLOCK_ROWS - 1, BLOCK_ROWS, BLOCK_ROWS + 1, 2 * BLOCK_ROWS + 3, N - 1):
        listed = idx[r]
        own = np.flatnonzero(listed == r)
        keep = np.delete(listed, own[0] if len(own) else len(listed) - 1)
        d = np.where(keep >= 0, np.linalg.norm(X[keep].astype(float) - X[r], axis=1), np.inf)
        order = np.argsort(d, kind="stable")
        assert np.array_equal(out[r], np.where(keep >= 0, keep, -1)[order])
        np.testing.assert_array_equal(dist[r], d[order])


def test_tied_list_edges_match_numpy_across_blocks() -> None:
    X, idx = _lists(1)
    dist, idx = refine_float64(X, idx)
    core = dist[:, 2]
    weights = np.unique(core)[::2]  # some list weights are the tree's, some not
    edges = tied_list_edges(dist, idx, core, weights)
    rows, cols = np.nonzero(idx >= 0)
    b = idx[rows, cols]
    w = np.maximum(np.maximum(core[rows], core[b]), dist[rows, cols])
    tied = np.isin(w, weights)
    expected = np.column_stack([rows[tied], b[tied], w[tied]])
    assert len(expected) > BLOCK_ROWS  # rows of every block are in it
    np.testing.assert_array_equal(edges, expected)


def test_lists_ranked_already_lose_their_own_entry_as_the_reranking_drops_it() -> None:
    """``without_self`` on float64 lists equals ``refine_float64`` of the same lists."""
    X, idx = _lists(1)
    out = refine_float64(X, np.column_stack([idx, np.full(N, -1)]))[1]
    ranked_d, ranked_i = refine_float64(X, idx, queries=X)  # sorted, nothing dropped
    kept_d, kept_i = without_self(ranked_d, ranked_i)
    assert kept_i.shape == (N, idx.shape[1] - 1)
    # a row whose own index is listed loses it; one without loses its farthest entry
    for r in (0, 2, 3, BLOCK_ROWS, N - 1):
        own = np.flatnonzero(ranked_i[r] == r)
        drop = own[0] if len(own) else idx.shape[1] - 1
        assert np.array_equal(kept_i[r], np.delete(ranked_i[r], drop))
        assert np.array_equal(kept_d[r], np.delete(ranked_d[r], drop))
    listed = (idx == np.arange(N)[:, None]).any(1)
    assert np.array_equal(kept_i[listed], out[listed, : idx.shape[1] - 1])
