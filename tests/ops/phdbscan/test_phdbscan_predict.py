"""approximate_predict above the exact-search size: cell-grouped candidates, blocks of queries."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs

import ops.phdbscan._attributes as phdbscan
from ops.phdbscan import PHDBSCAN
from ops.phdbscan._knn_graph import CellIndex

X, _ = make_blobs(3000, 16, centers=12, cluster_std=1.5, random_state=4)
X = X.astype(np.float32)
TRAIN, NEW = X[:2400], X[2400:]


def test_cell_grouped_prediction_agrees_with_exact_search(monkeypatch: pytest.MonkeyPatch) -> None:
    model = PHDBSCAN(min_cluster_size=30, min_samples=10, mode="exact").fit(TRAIN)
    exact_labels, _ = model.approximate_predict(NEW)
    assert model._pred_index is not None and model._pred_index.backend == "flat"

    monkeypatch.setattr(phdbscan, "PREDICT_EXACT_MAX_N", 1000)
    monkeypatch.setattr(phdbscan, "PREDICT_BLOCK", 97)  # several blocks, one of them short
    model._pred_index = None
    labels, probs = model.approximate_predict(NEW)
    assert isinstance(model._pred_index, CellIndex)
    assert len(np.unique(exact_labels[exact_labels >= 0])) >= 5
    assert np.mean(labels == exact_labels) >= 0.98
    assert (probs[labels < 0] == 0).all() and (probs[labels >= 0] > 0).all()


def test_cell_index_finds_the_exact_neighbours_when_it_probes_every_cell() -> None:
    index = CellIndex(n_cells=16, n_probe=16).fit(TRAIN)
    dist, idx = index.search(NEW, 5)
    brute = np.linalg.norm(NEW[:, None, :] - TRAIN[None, :, :], axis=2)
    np.testing.assert_array_equal(idx[:, 0], brute.argmin(1))
    np.testing.assert_allclose(dist, np.sort(brute, 1)[:, :5], rtol=1e-4, atol=1e-4)
