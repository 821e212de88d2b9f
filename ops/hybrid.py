"""The hybrid vector of FinDeepBehaviorCluster: sequence embedding joined with intuitive features.

Each block is standardised, then scaled so its expected squared norm equals its weight squared;
without that, whichever block has more dimensions would dominate Euclidean distances.
"""

from __future__ import annotations

import numpy as np


def standardise(block: np.ndarray) -> np.ndarray:
    mean = block.mean(axis=0)
    std = block.std(axis=0)
    return (block - mean) / np.where(std > 1e-8, std, 1.0)


def hybrid_vectors(blocks: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """Concatenate weighted, standardised blocks (rows aligned): ``float32 [n, sum(d)]``.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> h = hybrid_vectors([rng.normal(size=(100, 32)), rng.normal(size=(100, 4))], [1.0, 1.0])
    >>> h.shape
    (100, 36)
    """
    if len(blocks) != len(weights):
        raise ValueError(f"{len(blocks)} blocks but {len(weights)} weights")
    parts = [
        standardise(np.asarray(b, dtype=np.float64)) * (w / np.sqrt(max(b.shape[1], 1)))
        for b, w in zip(blocks, weights, strict=True)
        if b.shape[1] and w > 0
    ]
    if not parts:
        raise ValueError("every block is empty or has zero weight")
    return np.hstack(parts).astype(np.float32)
