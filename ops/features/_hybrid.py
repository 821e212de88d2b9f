"""The hybrid vector of FinDeepBehaviorCluster: sequence embedding joined with intuitive features.

Each block is standardised, then scaled so its expected squared norm equals its weight squared;
without that, whichever block has more dimensions would dominate Euclidean distances. The
scaling is fitted once (``fit_hybrid``) and kept, so transactions scored later land in the
space the clusters were found in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

_ROWS = 1 << 16  # rows per step of fit_hybrid and apply_hybrid


@dataclass(frozen=True)
class HybridScaling:
    """Per block: column means and standard deviations, and the block's scale ``w / sqrt(d)``."""

    means: list[list[float]]
    stds: list[list[float]]
    scales: list[float]

    @property
    def used(self) -> list[int]:
        """The blocks that take part in distances: those with columns and a positive scale."""
        return [
            i
            for i, (mean, scale) in enumerate(zip(self.means, self.scales, strict=True))
            if mean and scale > 0
        ]

    @property
    def width(self) -> int:
        """The hybrid vector's columns: the used blocks' columns."""
        return sum(len(self.means[i]) for i in self.used)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HybridScaling:
        return cls(**data)


def fit_hybrid(blocks: list[np.ndarray], weights: list[float]) -> HybridScaling:
    """The standardisation and weighting of each block, learnt on the training window."""
    if len(blocks) != len(weights):
        raise ValueError(f"{len(blocks)} blocks but {len(weights)} weights")
    if not any(b.shape[1] and w > 0 for b, w in zip(blocks, weights, strict=True)):
        raise ValueError("every block is empty or has zero weight")
    moments = [_mean_and_std(b) for b in blocks]
    return HybridScaling(
        means=[mean.tolist() for mean, _ in moments],
        stds=[std.tolist() for _, std in moments],
        scales=[
            float(w / np.sqrt(max(b.shape[1], 1))) for b, w in zip(blocks, weights, strict=True)
        ],
    )


def _mean_and_std(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and (population) standard deviations in float64, ``_ROWS`` rows a step.

    Two passes, as ``np.std``: the mean, then the mean squared deviation from it. A float64
    copy of the block and of its deviations cost 1.5 GB at 3M x 32, and their page faults up
    to 3 s.
    """
    n, d = block.shape
    if n == 0:
        return np.full(d, np.nan), np.full(d, np.nan)
    total = np.zeros(d)
    for r in range(0, n, _ROWS):
        total += np.asarray(block[r : r + _ROWS], dtype=np.float64).sum(axis=0)
    mean = total / n
    squares = np.zeros(d)
    for r in range(0, n, _ROWS):
        squares += ((np.asarray(block[r : r + _ROWS], dtype=np.float64) - mean) ** 2).sum(axis=0)
    return mean, np.sqrt(squares / n)


def apply_hybrid(scaling: HybridScaling, blocks: list[np.ndarray]) -> np.ndarray:
    """Blocks (rows aligned) in a fitted hybrid space: ``float32 [n, sum(d)]``.

    Written block by block, ``_ROWS`` rows at a time, into the float32 result: the same
    float64 arithmetic per entry as whole-block temporaries, without ~1 GB of them at 1M rows.
    """
    if len(blocks) != len(scaling.scales):
        raise ValueError(f"{len(blocks)} blocks, but {len(scaling.scales)} were fitted")
    for block, mean in zip(blocks, scaling.means, strict=True):
        if len(mean) != block.shape[1]:
            raise ValueError(f"a block has {block.shape[1]} columns, fitted on {len(mean)}")
    if not scaling.used:
        raise ValueError("need at least one array to concatenate")
    n = len(blocks[scaling.used[0]])
    out = np.empty((n, scaling.width), np.float32)
    start = 0
    for i in scaling.used:
        mean, std = np.asarray(scaling.means[i]), np.asarray(scaling.stds[i])
        std = np.where(std > 1e-8, std, 1.0)
        stop = start + len(mean)
        for r in range(0, n, _ROWS):
            centred = np.asarray(blocks[i][r : r + _ROWS], dtype=np.float64) - mean
            out[r : r + _ROWS, start:stop] = centred / std * scaling.scales[i]
        start = stop
    return out


def hybrid_vectors(blocks: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """Concatenate weighted, standardised blocks (rows aligned): ``float32 [n, sum(d)]``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> h = hybrid_vectors([rng.normal(size=(100, 32)), rng.normal(size=(100, 4))], [1.0, 1.0])
    >>> h.shape
    (100, 36)
    """
    return apply_hybrid(fit_hybrid(blocks, weights), blocks)
