"""The sweep's ranking criterion: what wins, what ranks last, when labels decide."""

from __future__ import annotations

import math

import pytest

from ops.evaluation import UNRANKABLE, trial_score


def test_noise_costs_what_density_earns() -> None:
    dense_but_noisy = {"quality.dbcv": 0.6, "quality.noise_share": 0.5}
    looser_but_covering = {"quality.dbcv": 0.4, "quality.noise_share": 0.1}
    assert trial_score(looser_but_covering) > trial_score(dense_but_noisy)


def test_a_trial_without_two_clusters_ranks_last() -> None:
    assert trial_score({"quality.dbcv": math.nan, "quality.noise_share": 0.0}) == UNRANKABLE
    assert trial_score({}) == UNRANKABLE


def test_labels_decide_when_present() -> None:
    metrics = {
        "quality.dbcv": -0.5,
        "quality.noise_share": 0.9,
        "labels.fraud_caught": 0.6,
        "labels.risky_precision": 0.9,
    }
    assert trial_score(metrics) == pytest.approx(2 * 0.6 * 0.9 / 1.5)
    assert trial_score(metrics, "unsupervised") == pytest.approx(-1.4)
    no_risky = {**metrics, "labels.fraud_caught": 0.0, "labels.risky_precision": math.nan}
    assert trial_score(no_risky) == 0.0


def test_ranking_by_labels_without_labels_is_refused() -> None:
    with pytest.raises(ValueError, match="no label column"):
        trial_score({"quality.dbcv": 0.1, "quality.noise_share": 0.1}, "labels")
