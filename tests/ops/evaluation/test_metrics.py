"""Internal and external cluster scores on seeded blobs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs

from ops.evaluation import cluster_quality, dbcv, external_scores, ring_capture, ring_rule_scores

X, Y = make_blobs(n_samples=600, centers=4, n_features=6, cluster_std=0.6, random_state=0)
LABELS = Y.copy()
LABELS[:30] = -1


def test_cluster_quality_keys_and_values() -> None:
    q = cluster_quality(X, LABELS)
    assert q["n_points"] == 600
    assert q["n_clusters"] == 4
    assert q["noise_share"] == pytest.approx(0.05)
    assert q["size_min"] <= q["size_median"] <= q["size_max"]
    assert 0.7 < q["silhouette"] <= 1
    assert 0.5 < q["dbcv"] <= 1
    assert all(isinstance(v, float) for v in q.values())


def test_cluster_quality_samples() -> None:
    q = cluster_quality(X, LABELS, sample_size=200, seed=1)
    assert q["sample_size"] == 200
    assert q["n_points"] == 600  # counts use all points, only O(n^2) scores sample
    assert 0.5 < q["silhouette"] <= 1


def test_cluster_quality_reads_only_the_sample_through_a_function() -> None:
    asked: list[np.ndarray] = []

    def rows(at: np.ndarray) -> np.ndarray:
        asked.append(at)
        return X[at]

    assert cluster_quality(rows, LABELS, sample_size=200, seed=1) == cluster_quality(
        X, LABELS, sample_size=200, seed=1
    )
    assert len(asked) == 1 and len(asked[0]) == 200


def test_degenerate_inputs_give_nan_not_errors() -> None:
    q = cluster_quality(X, np.full(len(X), -1))
    assert q["n_clusters"] == 0 and q["noise_share"] == 1.0
    assert np.isnan(q["silhouette"]) and np.isnan(q["dbcv"])
    assert np.isnan(cluster_quality(X, np.zeros(len(X), dtype=int))["dbcv"])


def test_dbcv_prefers_true_partition_and_penalises_noise() -> None:
    good = dbcv(X, Y)
    rng = np.random.default_rng(0)
    shuffled = dbcv(X, rng.permutation(Y))
    assert good > 0.5 > shuffled
    assert dbcv(X, LABELS) < good  # noise counts against the score
    # high-dimensional input must not overflow the (1/d)^dim core distance
    Xh, yh = make_blobs(n_samples=200, centers=3, n_features=256, random_state=0)
    assert 0.5 < dbcv(Xh, yh) <= 1


def test_dbcv_matches_reference_when_available() -> None:
    validity = pytest.importorskip("hdbscan.validity")
    for labels in (Y, LABELS):
        ref = validity.validity_index(X, labels.astype(np.int64))
        assert dbcv(X, labels) == pytest.approx(ref, abs=1e-9)
    # overlapping blobs: many tied mutual-reachability weights, ties broken alike
    Xo, yo = make_blobs(n_samples=300, centers=3, n_features=4, cluster_std=2.0, random_state=3)
    yo[::17] = -1
    assert dbcv(Xo, yo) == pytest.approx(validity.validity_index(Xo, yo), abs=1e-9)


def test_external_scores() -> None:
    perfect = external_scores(Y, Y)
    assert perfect["ari"] == pytest.approx(1.0) and perfect["nmi"] == pytest.approx(1.0)
    s = external_scores(LABELS, pd.Series(Y).astype(str))
    assert s["ari"] < 1.0 and s["ari_clustered"] == pytest.approx(1.0)
    truth = pd.Series(Y, dtype=object)
    truth[:100] = None
    assert external_scores(Y, truth)["n"] == 500


def test_ring_capture() -> None:
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, -1, -1])
    pattern = pd.Series(["ring", "ring", "ring", "ring", None, None, None, "bot", "bot", None])
    risky = np.isin(labels, [0, 2])
    fraud = pattern.notna().astype(int)
    out = ring_capture(labels, risky, pattern, is_fraud=fraud).set_index("pattern")
    assert out.loc["ring", "n"] == 4
    assert out.loc["ring", "recall"] == pytest.approx(0.75)
    assert out.loc["ring", "share_of_risky"] == pytest.approx(0.5)
    assert out.loc["ring", "top_cluster"] == 0
    assert out.loc["bot", "recall"] == pytest.approx(0.5)
    assert out.loc["(none)", "n_in_risky"] == 2
    assert out.attrs["risky_precision"] == pytest.approx(4 / 6)
    assert out["share_of_risky"].sum() == pytest.approx(1.0)


def test_ring_rule_scores() -> None:
    # cluster 0 and 1: siblings of "ring"; 2: "bot"; 3: risky but mostly legitimate
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 3, -1, -1, 4])
    pattern = pd.Series(
        ["ring", "ring", "ring", "ring", "ring", "bot", "bot", None, None, None, "bot", "ring",
         None, None]
    )  # fmt: skip
    fraud = pattern.notna().to_numpy()
    risk = pd.DataFrame(
        {
            "cluster": [-1, 0, 1, 2, 3, 4],
            "risky": [False, True, True, True, True, False],
            "label_flag": [False, True, False, True, False, False],
            "coordination_flag": [False, False, True, True, True, False],
        }
    )
    n = len(labels)
    # cluster 0's rule matches its 3 members and the noise ring member; cluster 1 has none;
    # the bot rule matches 2 bots and one legitimate transaction
    hits = {0: np.isin(np.arange(n), [0, 1, 2, 11]), 2: np.isin(np.arange(n), [5, 6, 12])}
    out = ring_rule_scores(labels, risk, hits, pattern, fraud).set_index("pattern")
    ring = out.loc["ring"]
    assert (ring["n"], ring["n_clusters"], ring["by_labels"], ring["by_coordination"]) == (
        6,
        2,
        1,
        1,
    )
    assert ring["n_with_rules"] == 1
    assert ring["recall"] == pytest.approx(5 / 6)
    assert ring["recall_by_labels"] == pytest.approx(3 / 6)
    assert ring["precision"] == pytest.approx(1.0)
    assert ring["rule_support"] == 4
    assert ring["rule_precision"] == pytest.approx(1.0)
    assert ring["rule_recall"] == pytest.approx(4 / 6)
    bot = out.loc["bot"]
    assert bot["precision"] == pytest.approx(2 / 3)
    assert bot["rule_precision"] == pytest.approx(2 / 3)
    # the third bot sits in the mostly legitimate cluster 3: risky, but not held by "bot"
    assert bot["recall"] == pytest.approx(1.0) and bot["n_clusters"] == 1
    none = out.loc["(none)"]
    assert none["n_clusters"] == 1 and none["n_with_rules"] == 0  # the false alarm shows up
    assert np.isnan(none["rule_precision"])
