"""Flag reasons: cluster, soft membership (calibrated on labels, or the fallback), rule."""

from __future__ import annotations

import hdbscan
import numpy as np
import pandas as pd
import pytest

from ops.risk import (
    Condition,
    MembershipConfig,
    Rule,
    calibrate_membership,
    flag_transactions,
    membership_candidates,
    risky_membership,
    rule_hits,
)


def test_the_first_reason_that_holds_is_the_flag_reason() -> None:
    cluster = np.array([0, 0, -1, -1, 1, 1, -1])
    membership = np.array([False, False, True, False, True, False, False])
    rule = np.array([True, False, True, True, False, False, False])
    branch = np.array([False, True, False, False, False, True, False])
    risky, reason = flag_transactions(
        cluster, {0}, branch=branch, membership=membership, rule_hits=rule
    )
    expected = ["cluster", "cluster", "membership", "rule", "membership", "branch", None]
    assert reason.tolist() == expected
    assert risky.tolist() == [True, True, True, True, True, True, False]
    only_clusters, reason = flag_transactions(cluster, [1])
    assert only_clusters.tolist() == [False, False, False, False, True, True, False]
    assert set(reason[~only_clusters]) == {None}


def test_candidates_are_noise_and_non_risky_siblings_of_risky_clusters() -> None:
    cluster = np.array([-1, 0, 1, 2, 3])
    parent = {0: 10, 1: 10, 2: 11, 3: 12}  # 0 and 1 are siblings; 2 and 3 are not
    assert membership_candidates(cluster, {0}, parent).tolist() == [True, False, True, False, False]
    assert membership_candidates(cluster, {0, 1}, parent).tolist() == [
        True,
        False,
        False,
        False,
        False,
    ]


@pytest.fixture(scope="module")
def stragglers() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidates' risky membership and labels: ring stragglers score high, others low."""
    rng = np.random.default_rng(1)
    score = np.r_[rng.uniform(0.04, 0.3, 80), rng.uniform(0.0, 0.06, 400)]
    truth = np.r_[np.ones(80), np.zeros(400)]
    label = np.where(rng.random(len(score)) < 0.7, truth, np.nan)  # 70% labelled
    return score, np.ones(len(score), dtype=bool), label


def test_membership_threshold_is_calibrated_on_labelled_candidates(stragglers) -> None:
    score, candidate, label = stragglers
    calibration = calibrate_membership(score, candidate, label)
    assert calibration.calibrated
    table = calibration.table.set_index("threshold")
    chosen = table.loc[calibration.threshold]
    assert chosen["precision"] >= 0.9 and chosen["n_labelled"] >= 20
    assert 0.04 < calibration.threshold <= 0.1  # where the stragglers part from the rest
    lower = table.index[table.index < calibration.threshold]
    assert all(table.loc[t, "precision"] < 0.9 for t in lower)
    assert table["recall"].is_monotonic_decreasing and table.loc[0.02, "recall"] == 1.0
    # unlabelled candidates are flagged with the same threshold, at the same precision
    unlabelled = np.isnan(label) & (score >= calibration.threshold)
    assert unlabelled.sum() >= 10 and (np.arange(len(score))[unlabelled] < 80).mean() >= 0.9


def test_without_labels_the_threshold_falls_back(stragglers) -> None:
    score, candidate, _ = stragglers
    calibration = calibrate_membership(score, candidate, np.full(len(score), np.nan))
    assert not calibration.calibrated and calibration.threshold == 0.5
    assert calibration.table["precision"].isna().all()
    assert calibration.to_dict()["table"][0]["precision"] is None
    few = np.where(np.arange(len(score)) % 50 == 0, 1.0, np.nan)  # labelled, but too few
    config = MembershipConfig(fallback=0.7)
    assert calibrate_membership(score, candidate, few, config).threshold == 0.7


def test_hdbscan_membership_vectors_feed_the_score() -> None:
    rng = np.random.default_rng(2)
    X = np.vstack([rng.normal(0, 0.3, (100, 2)), rng.normal(6, 0.3, (100, 2)), [[0.9, 0.9]]])
    model = hdbscan.HDBSCAN(min_cluster_size=20, prediction_data=True).fit(X)
    vectors = hdbscan.all_points_membership_vectors(model)
    first = int(model.labels_[0])
    score = risky_membership(vectors, {first})
    assert score[:100].mean() > 0.5 > score[100:200].mean()
    assert score[-1] > risky_membership(vectors, {1 - first})[-1]  # nearer the first blob


def test_membership_is_the_risky_clusters_share_of_the_point() -> None:
    vectors = np.array([[0.3, 0.3, 0.4], [0.9, 0.05, 0.05], [0.02, 0.01, 0.01], [0, 0, 0]])
    assert risky_membership(vectors, {0, 1}).tolist() == pytest.approx([0.6, 0.95, 0.75, 0])
    assert risky_membership(vectors, {7}).tolist() == [0.0] * 4
    assert risky_membership(np.array([0.2, 0.8]), {0}).tolist() == [1.0, 1.0]


def test_rules_flag_when_precise_with_noise_left_aside() -> None:
    frame = pd.DataFrame({"amount": [1.0, 2.0, 3.0, 4.0, 50.0, 60.0, np.nan]})
    cluster = np.array([0, 0, -1, -1, 1, 1, -1])
    cheap = Rule(0, (Condition("amount", "<=", 5.0),))  # 2 in cluster 0, 2 in noise
    loose = Rule(0, (Condition("amount", "<=", 55.0),))  # also 1 of cluster 1: 2 of 3
    assert rule_hits([cheap], frame, cluster, 0.8).tolist() == [True] * 4 + [False] * 3
    assert not rule_hits([loose], frame, cluster, 0.8).any()
    assert rule_hits([loose], frame, cluster, 0.6).sum() == 5
    assert not rule_hits([], frame, cluster, 0.8).any()


def test_rules_flag_beyond_their_clusters_only_where_the_labels_agree() -> None:
    """20 noise points matched: a rule flags them unless enough labels there say clean."""
    frame = pd.DataFrame({"amount": np.r_[np.ones(2), np.ones(20), [50.0]]})
    cluster = np.r_[[0, 0], np.full(20, -1), [1]]
    rule = Rule(0, (Condition("amount", "<=", 5.0),))
    config = MembershipConfig(min_precision=0.95, min_labelled=20)
    fraud = np.r_[[1, 1], np.ones(20), [0]]
    clean = np.r_[[1, 1], np.r_[np.ones(10), np.zeros(10)], [0]]
    too_few = np.where(np.arange(23) >= 12, clean, np.nan)  # 10 clean labels
    assert rule_hits([rule], frame, cluster, 0.8, fraud, config).sum() == 22
    assert not rule_hits([rule], frame, cluster, 0.8, clean, config).any()
    assert rule_hits([rule], frame, cluster, 0.8, too_few, config).sum() == 22


def test_labels_that_allow_no_precise_threshold_flag_nothing(stragglers) -> None:
    score, candidate, _ = stragglers
    rng = np.random.default_rng(3)
    coin = np.where(rng.random(len(score)) < 0.5, 1.0, 0.0)  # fraud unrelated to the score
    calibration = calibrate_membership(score, candidate, coin)
    assert calibration.calibrated and calibration.threshold == np.inf
    assert not (score >= calibration.threshold).any()
    assert calibration.to_dict()["threshold"] is None
