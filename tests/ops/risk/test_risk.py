"""Labelled and coordination risk on planted clusters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ops.risk import CoordinationConfig, RiskConfig, assess_risk, missed_fraud, review_list
from ops.risk._risk import wilson_lower_bound

RNG_SEED = 7


def _frame() -> pd.DataFrame:
    """Cluster 0: a coordinated ring; 1: diffuse legit traffic; 2: labelled fraud; -1: noise."""
    rng = np.random.default_rng(RNG_SEED)
    start = pd.Timestamp("2026-01-01", tz="UTC")
    day = 86_400
    parts = []
    n = 60  # the ring: one path, bot timing, 3 devices, new accounts, one hour
    parts.append(
        pd.DataFrame(
            {
                "cluster": 0,
                "label": np.nan,
                "ts": start + pd.to_timedelta(3 * day + rng.uniform(0, 3600, n), unit="s"),
                "median_dwell": rng.uniform(0.2, 0.4, n),
                "dwell_cv": rng.uniform(0.05, 0.15, n),
                "path": "home>item>checkout",
                "device_id": rng.choice(["d1", "d2", "d3"], n),
                "ip": [f"10.0.0.{i}" for i in range(n)],
                "account_age_days": rng.uniform(0, 1, n),
            }
        )
    )
    n = 200  # diffuse: varied paths, human timing, unique devices, old accounts, all week
    paths = [
        "home>search>item>checkout",
        "home>item>cart>checkout",
        "item>checkout",
        "home>search>item>item>cart>checkout",
        "search>item>cart>checkout",
    ]
    parts.append(
        pd.DataFrame(
            {
                "cluster": 1,
                "label": np.where(rng.random(n) < 0.5, rng.binomial(1, 0.02, n), np.nan),
                "ts": start + pd.to_timedelta(rng.uniform(0, 7 * day, n), unit="s"),
                "median_dwell": rng.uniform(3, 30, n),
                "dwell_cv": rng.uniform(0.6, 1.5, n),
                "path": rng.choice(paths, n),
                "device_id": [f"dev{i}" for i in range(n)],
                "ip": [f"192.168.{i // 250}.{i % 250}" for i in range(n)],
                "account_age_days": rng.uniform(30, 2000, n),
            }
        )
    )
    n = 40  # labelled fraud but otherwise ordinary
    parts.append(
        pd.DataFrame(
            {
                "cluster": 2,
                "label": np.r_[np.ones(18), np.zeros(2), np.full(20, np.nan)],
                "ts": start + pd.to_timedelta(rng.uniform(0, 7 * day, n), unit="s"),
                "median_dwell": rng.uniform(3, 30, n),
                "dwell_cv": rng.uniform(0.6, 1.5, n),
                "path": rng.choice(paths, n),
                "device_id": [f"x{i}" for i in range(n)],
                "ip": [f"172.16.0.{i}" for i in range(n)],
                "account_age_days": rng.uniform(30, 2000, n),
            }
        )
    )
    n = 30
    parts.append(
        pd.DataFrame(
            {
                "cluster": -1,
                "label": np.nan,
                "ts": start + pd.to_timedelta(rng.uniform(3 * day, 3 * day + 60, n), unit="s"),
                "median_dwell": 0.1,
                "dwell_cv": 0.0,
                "path": "a",
                "device_id": "same",
                "ip": "same",
                "account_age_days": 0.0,
            }
        )
    )
    df = pd.concat(parts, ignore_index=True)
    df["decision"] = "approved"
    df["amount"] = np.arange(len(df), dtype=float)
    return df


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return _frame()


@pytest.fixture(scope="module")
def risk(frame: pd.DataFrame) -> pd.DataFrame:
    return assess_risk(frame, id_columns=["device_id", "ip"]).set_index("cluster")


@pytest.mark.parametrize(
    ("k", "n", "expected"),
    [(0, 10, 0.0), (10, 10, 0.7225), (5, 10, 0.2366), (9, 10, 0.5958), (50, 100, 0.4038)],
)
def test_wilson_lower_bound_known_values(k: int, n: int, expected: float) -> None:
    assert wilson_lower_bound(k, n) == pytest.approx(expected, abs=1e-4)


def test_wilson_lower_bound_vectorised_and_empty() -> None:
    out = wilson_lower_bound(np.array([0, 1, 3]), np.array([0, 2, 3]))
    assert out.shape == (3,)
    assert out[0] == 0.0
    assert 0 < out[1] < out[2] < 1
    # more evidence at the same rate raises the bound
    assert wilson_lower_bound(90, 100) > wilson_lower_bound(9, 10)


def test_output_columns(risk: pd.DataFrame) -> None:
    for col in [
        "size",
        "n_labelled",
        "fraud_rate",
        "lift",
        "wilson_lower",
        "coordination_score",
        "sig_identical",
        "sig_machine",
        "sig_shared_ids",
        "sig_young",
        "sig_burst",
        "risky",
        "risk_reason",
    ]:
        assert col in risk.columns
    assert risk.loc[0, "size"] == 60
    assert risk["risky"].dtype == bool


def test_planted_ring_flagged_by_coordination(risk: pd.DataFrame) -> None:
    ring = risk.loc[0]
    assert ring["coordination_flag"] and ring["risky"]
    assert ring["n_labelled"] == 0
    assert ring["coordination_score"] > 0.8
    assert ring["shared_id_column"] == "device_id"
    assert ring["risk_reason"].startswith("coordination")
    assert "device_id" in ring["risk_reason"] and "same event path" in ring["risk_reason"]


def test_diffuse_cluster_not_flagged(risk: pd.DataFrame) -> None:
    legit = risk.loc[1]
    assert not legit["risky"]
    assert legit["coordination_score"] < 0.2
    assert legit["risk_reason"] == ""


def test_labelled_cluster_flagged_by_labels(risk: pd.DataFrame) -> None:
    fraud = risk.loc[2]
    assert fraud["label_flag"] and not fraud["coordination_flag"]
    assert fraud["fraud_rate"] == pytest.approx(0.9)
    assert fraud["wilson_lower"] == pytest.approx(wilson_lower_bound(18, 20))
    assert fraud["lift"] > 3
    assert fraud["risk_reason"].startswith("labels: 18/20")


def test_noise_never_flagged(risk: pd.DataFrame) -> None:
    assert not risk.loc[-1, "risky"]


def test_single_signal_is_not_enough(frame: pd.DataFrame) -> None:
    only_burst = frame[frame["cluster"] == 1].copy()
    only_burst["ts"] = pd.Timestamp("2026-01-01", tz="UTC")
    only_burst = pd.concat([only_burst, frame[frame["cluster"] == 2]])
    risk = assess_risk(only_burst[["cluster", "label", "ts"]]).set_index("cluster")
    assert risk.loc[1, "sig_burst"] == 1.0
    assert not risk.loc[1, "coordination_flag"]


def test_config_is_tunable(frame: pd.DataFrame) -> None:
    strict = RiskConfig(coordination=CoordinationConfig(score_threshold=1.01))
    risk = assess_risk(frame, id_columns=["device_id"], config=strict).set_index("cluster")
    assert not risk.loc[0, "risky"]


def test_embedding_dispersion_signal(frame: pd.DataFrame) -> None:
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(len(frame), 4)) * 5
    emb[frame["cluster"].to_numpy() == 0] = rng.normal(size=(60, 4)) * 0.1
    risk = assess_risk(frame.drop(columns="path"), embeddings=emb).set_index("cluster")
    assert risk.loc[0, "dispersion_ratio"] < 0.1
    assert risk.loc[0, "sig_identical"] == 1.0
    assert risk.loc[1, "sig_identical"] == 0.0


def test_missed_fraud_and_review_list(frame: pd.DataFrame, risk: pd.DataFrame) -> None:
    df = frame.copy()
    df.loc[df.index[df["cluster"] == 2][:3], "decision"] = "declined"
    missed = missed_fraud(df, risk.reset_index())
    assert len(missed) == 15 and set(missed["cluster"]) == {2}
    assert missed["amount"].is_monotonic_decreasing
    assert missed["risk_reason"].str.startswith("labels").all()
    assert len(missed_fraud(df, [0])) == 0
    queue = review_list(df, [0, 2])
    assert len(queue) == 60 + 20
    assert queue["label"].isna().all()
    assert queue["cluster"].is_monotonic_increasing


def test_shared_ids_judged_against_chance() -> None:
    """Repeat customers make a big cluster share devices; only sharing beyond chance counts."""
    rng = np.random.default_rng(3)
    n_big, n_ring = 3000, 40
    df = pd.DataFrame(
        {
            "cluster": np.r_[np.zeros(n_big, int), np.ones(n_ring, int)],
            "label": np.nan,
            "ts": np.arange(n_big + n_ring, dtype=float),
            # loyal shoppers: 3000 purchases from 1500 devices, most devices seen twice
            "device_id": np.r_[rng.integers(0, 1500, n_big), rng.integers(5000, 5004, n_ring)],
        }
    )
    risk = assess_risk(df, id_columns=["device_id"]).set_index("cluster")
    big, ring = risk.loc[0], risk.loc[1]
    assert big["members_per_id"] > 1.5  # raw sharing looks suspicious...
    assert big["id_concentration"] == pytest.approx(1.0, abs=0.1)  # ...but is what chance gives
    assert big["sig_shared_ids"] == 0.0
    assert ring["n_distinct_ids"] == 4 and ring["id_concentration"] > 9
    assert ring["sig_shared_ids"] == 1.0


def test_edge_inputs() -> None:
    empty = pd.DataFrame(
        {"cluster": pd.Series([], dtype=int), "label": pd.Series([], dtype=float), "ts": []}
    )
    assert assess_risk(empty.assign(ts=pd.to_datetime(empty["ts"], utc=True))).empty
    iso = pd.DataFrame(
        {
            "cluster": [-1, 0, 0, 0, 1],
            "label": np.nan,  # no labels at all: base rate unknown, nothing label-flagged
            "ts": [
                "2026-01-01T00:00:00Z",
                "2026-01-01T01:00:00+01:00",
                "2026-01-02",
                "2026-01-02T10:00:00.123Z",
                "2026-01-04",
            ],
            "device_id": None,
        }
    )
    risk = assess_risk(iso, id_columns=["device_id", "not_there"]).set_index("cluster")
    assert not risk["risky"].any()
    assert risk.loc[0, "burst_seconds"] > 0
    assert np.isnan(risk.loc[0, "id_concentration"])
    assert np.isnan(risk.loc[1, "burst_span"])  # one member: no span


def test_shared_ids_count_members_and_distinct_values_as_groupby() -> None:
    """Ids counted from their codes: pandas' size and nunique per cluster, missing ids left out."""
    rng = np.random.default_rng(5)
    n = 2000
    ids = pd.Series(rng.choice(["d1", "d2", "d3", "é4", None], n), dtype="str")
    df = pd.DataFrame(
        {"cluster": rng.integers(-1, 12, n), "label": np.nan, "ts": np.arange(n, dtype=float)}
    )
    df["device_id"] = ids
    df.loc[df["cluster"] == 7, "device_id"] = None  # a cluster without any id
    risk = assess_risk(df, id_columns=["device_id"]).set_index("cluster")
    known = df[df["device_id"].notna()]
    nunique = known.groupby("cluster")["device_id"].nunique()
    size = known.groupby("cluster").size()
    measured = risk.loc[nunique.index]
    assert measured["n_distinct_ids"].tolist() == nunique.tolist()
    np.testing.assert_allclose(measured["members_per_id"], size / nunique)
    assert np.isnan(risk.loc[7, "id_concentration"]) and risk.loc[7, "n_distinct_ids"] == 0


def test_modal_path_is_the_most_common_and_of_equals_the_first_seen() -> None:
    paths = [["b"], ["a"], ["a"], ["b"], ["c"], None, ["x", "y"], ["z"], ["x", "y"], ["z"], None]
    df = pd.DataFrame(
        {
            "cluster": [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2],
            "label": np.nan,
            "ts": np.arange(11, dtype=float),
            "path": pd.Series(paths, dtype=object),
        }
    )
    risk = assess_risk(df).set_index("cluster")
    assert risk.loc[0, "modal_path"] == ["b"]  # a and b twice each: b came first
    assert risk.loc[0, "path_share"] == pytest.approx(2 / 5)  # missing paths not counted
    assert risk.loc[1, "modal_path"] == ["x", "y"] and risk.loc[1, "path_share"] == 0.5
    assert risk.loc[2, "modal_path"] is None and np.isnan(risk.loc[2, "path_share"])
