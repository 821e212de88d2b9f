"""Sessions that differ only in rhythm, shared by the encoder, objective and baseline tests."""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors

VOCAB = 42


def timing_only_sessions(
    n: int, seed: int, human_median: float = 2.0
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Same page distribution for both classes; bots click every 600 ms (±3 %)."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, VOCAB - 1)
    p /= p.sum()
    tokens, dwell = [], []
    y = np.arange(n) % 2
    for bot in y:
        length = int(rng.integers(8, 33))
        tokens.append((rng.choice(VOCAB - 2, size=length, p=p) + 2).astype(np.int32))
        if bot:
            d = 0.6 * np.exp(rng.normal(0.0, 0.03, length))
        else:
            d = rng.lognormal(np.log(human_median), 0.6, length)
        d[0] = 0.0
        dwell.append(d.astype(np.float32))
    return tokens, dwell, y


def knn_purity(z: np.ndarray, y: np.ndarray, k: int = 10) -> float:
    """Share of each point's k nearest neighbours (standardised space) in its own class."""
    z = (z - z.mean(0)) / (z.std(0) + 1e-8)
    idx = NearestNeighbors(n_neighbors=k + 1).fit(z).kneighbors(z, return_distance=False)
    return float((y[idx[:, 1:]] == y[:, None]).mean())
