"""Input checks and phase timing shared by pHDBSCAN's fit and predict paths."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

__all__ = ["PhaseTimer", "as_finite_matrix", "check_finite_rows"]


class PhaseTimer:
    """Adds wall seconds since the previous call to ``stats["time_<phase>"]``."""

    def __init__(self, stats: dict[str, Any]) -> None:
        self.stats = stats
        self.t = time.perf_counter()

    def __call__(self, phase: str) -> None:
        now = time.perf_counter()
        self.stats["time_" + phase] = self.stats.get("time_" + phase, 0.0) + now - self.t
        self.t = now


def check_finite_rows(X: np.ndarray) -> None:
    """Raise ``ValueError`` naming the first rows that hold NaN or infinity.

    hdbscan silently labels such rows noise; in a fraud pipeline a NaN embedding is an
    upstream bug, so it should stop the run where it can still be traced to a row.
    """
    bad = ~np.isfinite(X).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        shown = ", ".join(str(r) for r in rows[:5])
        more = f" (and {len(rows) - 5} more)" if len(rows) > 5 else ""
        raise ValueError(f"input contains NaN or infinity in row(s) {shown}{more}")


def as_finite_matrix(X: Any) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"expected a 2-d array, got shape {X.shape}")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    check_finite_rows(X)
    return np.ascontiguousarray(X)
