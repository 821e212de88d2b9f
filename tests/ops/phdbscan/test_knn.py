"""Tests of ops.phdbscan._knn backends against a numpy brute-force reference."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from ops.phdbscan._knn import KNNIndex, knn_search, resolve_backend

X, _ = make_blobs(2000, 12, centers=10, random_state=0)
X = X.astype(np.float32)
Q = X[:300] + np.float32(0.05)
ROOT = Path(__file__).resolve().parents[3]


def _brute(data: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    d = np.linalg.norm(queries[:, None, :].astype(np.float64) - data[None, :, :], axis=2)
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, idx, 1), idx


REF_D, REF_I = _brute(X, Q, 10)


def _recall(idx: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(idx, REF_I, strict=True)]))


@pytest.mark.parametrize("backend", ["flat", "torch"])
def test_exact_backends_match_brute_force(backend: str) -> None:
    D, idx = knn_search(X, 10, Q, backend=backend, device="cpu")
    assert D.dtype == np.float32 and idx.dtype == np.int64
    assert _recall(idx) == 1.0
    # true Euclidean distances, not FAISS's squared ones
    np.testing.assert_allclose(D, REF_D, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("backend", ["ivf", "hnsw"])
def test_approximate_backends_recall(backend: str) -> None:
    D, idx = knn_search(X, 10, Q, backend=backend, nlist=32, nprobe=8)
    assert _recall(idx) >= 0.95
    assert np.all(np.diff(D, axis=1) >= -1e-5)


def test_self_knn_returns_self_first() -> None:
    D, idx = knn_search(X, 5, backend="flat")
    assert np.mean(idx[:, 0] == np.arange(len(X))) > 0.999
    assert np.allclose(D[:, 0], 0, atol=1e-3)


def test_k_larger_than_n_pads() -> None:
    D, idx = knn_search(X[:4], 6, backend="flat")
    assert (idx[:, 4:] == -1).all() and np.isinf(D[:, 4:]).all()
    D, idx = knn_search(X[:4], 6, backend="torch", device="cpu")
    assert (idx[:, 4:] == -1).all() and np.isinf(D[:, 4:]).all()


def test_torch_small_blocks_equal_flat() -> None:
    index = KNNIndex("torch", device="cpu", query_batch=64, db_batch=128).fit(X)
    D, idx = index.search(Q, 10)
    assert _recall(idx) == 1.0
    np.testing.assert_allclose(D, REF_D, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("backend", ["flat", "ivf", "torch"])
def test_index_pickles(backend: str) -> None:
    index = KNNIndex(backend, device="cpu", nlist=16).fit(X)
    clone = pickle.loads(pickle.dumps(index))
    np.testing.assert_array_equal(clone.search(Q[:20], 5)[1], index.search(Q[:20], 5)[1])


def test_resolve_backend_cpu_defaults() -> None:
    assert resolve_backend("flat") == "flat"
    if resolve_backend("auto") not in ("faiss_gpu", "torch"):
        assert resolve_backend("auto", exact=True) == "flat"
        assert resolve_backend("auto", exact=False) == "ivf"


def test_bad_input() -> None:
    with pytest.raises(ValueError):
        KNNIndex("flat").fit(X).search(Q[:, :3], 2)
    with pytest.raises(ValueError):
        KNNIndex("nope").fit(X)  # type: ignore[arg-type]


def test_cell_knn_exact_and_approximate() -> None:
    from sklearn.datasets import make_blobs

    from ops.phdbscan._knn_graph import cell_knn
    from ops.phdbscan._knn_refine import refine_float64

    faiss = pytest.importorskip("faiss")
    B, _ = make_blobs(4000, 8, centers=6, random_state=0)
    B = B.astype(np.float32)
    ref_d, ref_i = knn_search(B, 12, backend="flat")
    stats: dict = {}
    d, i = cell_knn(B, 12, exact=True, n_cells=40, n_probe=3, stats=stats)
    assert stats["uncertified"] > 0  # few probes: some lists must be searched again
    np.testing.assert_allclose(d, ref_d, rtol=1e-5, atol=1e-5)
    threshold = faiss.cvar.distance_compute_blas_threshold
    d, i = cell_knn(B, 12, n_cells=40, n_probe=6)  # GEMM distances inside, setting restored
    assert faiss.cvar.distance_compute_blas_threshold == threshold
    recall = np.mean([len(np.intersect1d(a, b)) / 12 for a, b in zip(i, ref_i, strict=True)])
    assert recall >= 0.9
    fd, fi = refine_float64(B, ref_i)
    assert fd.shape == (4000, 11) and not (fi == np.arange(4000)[:, None]).any()
    np.testing.assert_allclose(fd, ref_d[:, 1:], rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
def test_torch_cuda_matches_flat() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    D, idx = knn_search(X, 10, Q, backend="torch", device="cuda")
    assert _recall(idx) == 1.0
    np.testing.assert_allclose(D, REF_D, rtol=1e-3, atol=1e-2)


@pytest.mark.skipif(os.path.exists("/dev/nvidiactl"), reason="an NVIDIA driver is present")
def test_auto_backend_does_not_import_torch_without_a_gpu() -> None:
    """Importing torch only to find no GPU cost seconds of every CPU fit."""
    code = (
        "import sys; from ops.phdbscan._knn import resolve_backend; "
        "resolve_backend(); print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
