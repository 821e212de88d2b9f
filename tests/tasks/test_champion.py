"""Quality gates, without running the pipeline."""

from __future__ import annotations

import math

import pytest

from tasks.champion import QualityGates, check_gates

GOOD = {
    "pretrain.val_loss": 0.8,
    "cluster.noise_share": 0.2,
    "cluster.n_clusters": 12.0,
    "quality.dbcv": 0.30,
    "quality.silhouette": 0.10,
}


def test_healthy_run_passes_every_gate_with_or_without_a_champion() -> None:
    assert check_gates(GOOD, None, QualityGates()) == []
    assert check_gates(GOOD, {**GOOD, "quality.dbcv": 0.38}, QualityGates()) == []


@pytest.mark.parametrize(
    ("change", "champion", "failure"),
    [
        ({"pretrain.val_loss": math.nan}, None, "validation loss is not finite"),
        ({"cluster.noise_share": 0.9}, None, "noise share 0.90 > 0.60"),
        ({"cluster.n_clusters": 0.0}, None, "0 clusters < 1"),
        ({"quality.dbcv": 0.1}, {"quality.dbcv": 0.3}, "dbcv 0.1 is more than 0.1 below"),
        ({}, {"quality.dbcv": 0.45}, "below the champion's 0.450"),
    ],
)
def test_each_gate_fails_on_its_own(
    change: dict[str, float], champion: dict[str, float] | None, failure: str
) -> None:
    failed = check_gates({**GOOD, **change}, champion, QualityGates())
    assert len(failed) == 1 and failure in failed[0], failed


def test_quality_metric_is_chosen_and_missing_values_are_handled() -> None:
    silhouette = QualityGates(quality_metric="silhouette", max_quality_drop=0.01)
    assert check_gates(GOOD, {"quality.silhouette": 0.2}, silhouette)
    assert check_gates(GOOD, {"quality.dbcv": 0.9}, silhouette) == []
    # A champion without the metric cannot be compared with; a challenger without it can't win.
    assert check_gates(GOOD, {}, QualityGates()) == []
    missing = {k: v for k, v in GOOD.items() if k != "quality.dbcv"}
    assert check_gates(missing, {"quality.dbcv": 0.2}, QualityGates())
