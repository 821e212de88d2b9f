"""Evaluation: cluster quality, ground-truth scores, and how sweep trials are ranked."""

from ops.evaluation._metrics import (
    cluster_quality,
    dbcv,
    external_scores,
    ring_capture,
    ring_rule_scores,
)
from ops.evaluation._trial_ranking import UNRANKABLE, Basis, trial_score

__all__ = [
    "UNRANKABLE",
    "Basis",
    "cluster_quality",
    "dbcv",
    "external_scores",
    "ring_capture",
    "ring_rule_scores",
    "trial_score",
]
