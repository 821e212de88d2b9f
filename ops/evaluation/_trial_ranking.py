"""How sweep trials are ranked: one number per trial, higher is better, from evaluate's metrics.

Without labels, ``dbcv - noise_share``: DBCV (Moulavi et al. 2014, on evaluate's sample) rewards
dense clusters separated by sparse gaps and is a ratio of distances, so it stays comparable when
trials change the hybrid vector's weights or the embedding's size; noise is charged on top,
because a transaction left as noise is one no investigator will see in a ring, and a few tight
clusters over a sea of noise would otherwise win. With labels, the F1 of the risky set against
labelled fraud (harmonic mean of fraud caught and the risky set's precision): what the sweep is
for, once some outcomes are known.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

Basis = Literal["auto", "unsupervised", "labels"]
UNRANKABLE = -math.inf


def has_labels(metrics: Mapping[str, float]) -> bool:
    return "labels.fraud_caught" in metrics


def unsupervised_score(metrics: Mapping[str, float]) -> float:
    """``dbcv - noise_share`` in [-2, 1]; a trial with fewer than two clusters ranks last."""
    value = metrics.get("quality.dbcv", math.nan) - metrics.get("quality.noise_share", math.nan)
    return value if math.isfinite(value) else UNRANKABLE


def label_score(metrics: Mapping[str, float]) -> float:
    """F1 of the risky set against labelled fraud, in [0, 1]; no risky cluster scores 0."""
    caught = metrics.get("labels.fraud_caught", math.nan)
    precision = metrics.get("labels.risky_precision", math.nan)
    if not (math.isfinite(caught) and math.isfinite(precision)) or caught + precision == 0:
        return 0.0
    return 2 * caught * precision / (caught + precision)


def trial_score(metrics: Mapping[str, float], basis: Basis = "auto") -> float:
    """The ranking criterion; ``auto`` uses labels when the data has them.

    Examples
    --------
    >>> trial_score({"quality.dbcv": 0.5, "quality.noise_share": 0.2})
    0.3
    >>> trial_score({"labels.fraud_caught": 0.5, "labels.risky_precision": 1.0}, "labels")
    0.6666666666666666
    """
    if basis == "labels" or (basis == "auto" and has_labels(metrics)):
        if not has_labels(metrics):
            raise ValueError("ranking by labels, but the data has no label column")
        return label_score(metrics)
    return unsupervised_score(metrics)
