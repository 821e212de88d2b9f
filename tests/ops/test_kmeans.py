"""Tests of ops.kmeans.FaissKMeans."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from ops.kmeans import FaissKMeans

X, Y = make_blobs(3000, 8, centers=5, cluster_std=0.5, random_state=0)


def test_recovers_blobs() -> None:
    # faiss seeds by random sampling (no k-means++), so restarts matter
    km = FaissKMeans(n_clusters=5, n_iter=25, seed=0, n_redo=10).fit(X)
    assert km.cluster_centers_.shape == (5, 8)
    assert adjusted_rand_score(Y, km.labels_) > 0.99
    np.testing.assert_array_equal(km.predict(X), km.labels_)
    d2 = ((X - km.cluster_centers_[km.labels_]) ** 2).sum(1)
    assert km.inertia_ == pytest.approx(d2.sum(), rel=1e-3)


def test_fit_predict_and_seed_determinism() -> None:
    a = FaissKMeans(n_clusters=5, seed=3).fit_predict(X)
    b = FaissKMeans(n_clusters=5, seed=3).fit_predict(X)
    np.testing.assert_array_equal(a, b)


def test_pickle_and_errors() -> None:
    km = FaissKMeans(n_clusters=3).fit(X)
    clone = pickle.loads(pickle.dumps(km))
    np.testing.assert_array_equal(clone.predict(X[:50]), km.predict(X[:50]))
    with pytest.raises(ValueError):
        FaissKMeans(n_clusters=10).fit(X[:5])
    with pytest.raises(ValueError):
        km.predict(X[:, :3])
    bad = X.copy()
    bad[4, 0] = np.nan
    with pytest.raises(ValueError, match="4"):
        FaissKMeans(n_clusters=3).fit(bad)
    with pytest.raises(RuntimeError):
        FaissKMeans(n_clusters=3).predict(X)


@pytest.mark.gpu
def test_cuda_device() -> None:
    faiss = pytest.importorskip("faiss")
    if faiss.get_num_gpus() == 0:
        pytest.skip("needs a faiss GPU build")
    km = FaissKMeans(n_clusters=5, device="cuda").fit(X)
    assert adjusted_rand_score(Y, km.labels_) > 0.95
