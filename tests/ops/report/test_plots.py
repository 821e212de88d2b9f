"""The projection plots a sample of the hybrid space as the float64 vectors would."""

from __future__ import annotations

import tracemalloc

import numpy as np

from ops.report._plots import projection


def test_projection_of_a_float32_sample_equals_the_float64_one() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 8)).astype(np.float32)
    labels = rng.integers(-1, 4, 600)

    def points(vectors: np.ndarray) -> list[np.ndarray]:
        ax = projection(vectors, labels, risky=[2], sample_size=200).axes[0]
        return [c.get_offsets() for c in ax.collections]

    sampled, converted_first = points(X), points(X.astype(np.float64))
    assert sum(len(p) for p in sampled) == 200
    assert len(sampled) == len(converted_first)
    for a, b in zip(sampled, converted_first, strict=True):
        assert np.array_equal(a, b)


def test_projection_copies_only_its_sample() -> None:
    """No float64 copy of the whole space: at 1M x 64 that alone was 0.5 GB of the report."""
    X = np.random.default_rng(0).normal(size=(100_000, 64)).astype(np.float32)
    labels = np.zeros(len(X), dtype=np.int64)
    tracemalloc.start()
    try:
        projection(X, labels, sample_size=1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < X.nbytes  # a float64 copy would be twice X
