"""Comparing labelings whose cluster ids may differ (ids follow the order ties were broken in)."""

from __future__ import annotations

import numpy as np


def label_map(ours: np.ndarray, ref: np.ndarray) -> dict[int, int]:
    """Majority mapping of our label ids onto the reference's; noise maps to noise."""
    out = {-1: -1}
    for lab in np.unique(ours[ours >= 0]):
        vals, counts = np.unique(ref[ours == lab], return_counts=True)
        out[int(lab)] = int(vals[counts.argmax()])
    return out


def mismatch(ours: np.ndarray, ref: np.ndarray) -> float:
    """Share of points whose label, mapped onto the reference's ids, differs from it."""
    mapping = label_map(ours, ref)
    mapped = np.array([mapping[int(v)] for v in ours])
    return float(np.mean(mapped != ref))
