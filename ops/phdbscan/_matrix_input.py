"""Input checks, the metric's relation to Euclidean search, and phase timing for pHDBSCAN."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

__all__ = [
    "HDBSCAN_ALGORITHMS",
    "METRICS",
    "PhaseTimer",
    "check_finite_rows",
    "check_number",
    "from_euclidean",
    "to_euclidean",
    "to_search_space",
]

#: Metrics PHDBSCAN clusters in. Both are searched as Euclidean distances: cosine on
#: L2-normalised rows, where ``1 - cos(a, b) = |a - b|^2 / 2`` is increasing in ``|a - b|``,
#: so neighbours, the MST's edges and the hierarchy's order are the same and only the
#: distances are converted (:func:`from_euclidean`).
METRICS = ("euclidean", "cosine")


#: hdbscan's ``algorithm`` values: accepted (and checked) so that hdbscan code runs unchanged.
HDBSCAN_ALGORITHMS = (
    "best",
    "generic",
    "prims_kdtree",
    "prims_balltree",
    "boruvka_kdtree",
    "boruvka_balltree",
)


def check_number(
    name: str, value: Any, low: float, integer: bool = False, strict: bool = False
) -> None:
    """Raise ``ValueError`` unless ``value`` is a number (an integer if asked) >= ``low``."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    ok = ok and (not integer or float(value).is_integer())
    if not ok or value < low or (strict and value == low):
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {kind} {'>' if strict else '>='} {low}, got {value!r}")


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


def to_search_space(X: np.ndarray, metric: str) -> np.ndarray:
    """Return the rows searched with Euclidean distance: ``X``, or unit rows for cosine."""
    if metric == "euclidean":
        return np.ascontiguousarray(X)
    norms = np.linalg.norm(X.astype(np.float64), axis=1)
    zero = np.flatnonzero(norms == 0)
    if len(zero):
        shown = ", ".join(str(r) for r in zero[:5])
        raise ValueError(f"cosine distance is undefined for the all-zero row(s) {shown}")
    return np.ascontiguousarray((X / norms[:, None]).astype(X.dtype))


def from_euclidean(d: np.ndarray, metric: str) -> np.ndarray:
    """Convert distances between searched rows to the metric: ``d``, or ``d^2 / 2`` (cosine)."""
    d = np.asarray(d, dtype=np.float64)
    return d if metric == "euclidean" else d * d / 2.0


def to_euclidean(d: np.ndarray, metric: str) -> np.ndarray:
    """Invert :func:`from_euclidean`."""
    d = np.asarray(d, dtype=np.float64)
    return d if metric == "euclidean" else np.sqrt(2.0 * d)
