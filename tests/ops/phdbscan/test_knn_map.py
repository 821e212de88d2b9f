"""The cell kNN graph's chunks through an injected ``map``: the same graph, the same labels.

Here the builtin ``map`` (one chunk after the other) and a pool of three threads against the
default (a pool of OpenMP's thread count); ``tests/tasks/test_cluster_knn_tasks.py`` runs the
same chunks as Ray tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_blobs

from ops.phdbscan import PHDBSCAN
from ops.phdbscan._knn_graph import cell_knn

pytest.importorskip("faiss")

X, _ = make_blobs(4000, 8, centers=6, cluster_std=2.0, random_state=0)
X = X.astype(np.float32)

chunk_counts: list[int] = []


def threads_map(fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
    """``map`` on three threads, recording how many chunks it was given."""
    items = list(items)
    chunk_counts.append(len(items))
    with ThreadPoolExecutor(3) as pool:
        return list(pool.map(fn, items))


@pytest.mark.parametrize(
    ("exact", "cells"),
    [(True, {"n_cells": 40, "n_probe": 3}), (False, {})],
    ids=["exact", "approx"],
)
def test_any_map_builds_the_graph_of_the_default_to_the_bit(exact: bool, cells: dict) -> None:
    stats: dict = {}
    chunk_counts.clear()
    dist, idx = cell_knn(X, 12, exact=exact, **cells)
    dist_t, idx_t = cell_knn(X, 12, exact=exact, stats=stats, map_chunks=threads_map, **cells)
    dist_s, idx_s = cell_knn(X, 12, exact=exact, map_chunks=map, **cells)
    assert chunk_counts == [16]
    if exact:
        assert stats["uncertified"] > 0  # the chunks' searches against all rows are covered
    for other_dist, other_idx in [(dist_t, idx_t), (dist_s, idx_s)]:
        np.testing.assert_array_equal(other_idx, idx)
        np.testing.assert_array_equal(other_dist, dist)


@pytest.mark.parametrize("mode", ["exact", "approximate"])
def test_labels_through_another_map_equal_the_default(mode: str, tmp_path: Path) -> None:
    params = {"min_cluster_size": 25, "min_samples": 8, "mode": mode}
    reference = PHDBSCAN(**params).fit(X)
    chunk_counts.clear()
    model = clone(PHDBSCAN(**params, knn_map=threads_map)).fit(X)
    assert model.knn_backend_ == "cells" and chunk_counts == [16]
    assert model.labels_.max() >= 4
    np.testing.assert_array_equal(model.labels_, reference.labels_)
    np.testing.assert_array_equal(model.probabilities_, reference.probabilities_)
    np.testing.assert_array_equal(model.core_distances_, reference.core_distances_)
    model.save(tmp_path / "model.npz")
    assert PHDBSCAN.load(tmp_path / "model.npz").knn_map is None
