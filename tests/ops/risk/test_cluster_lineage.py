"""Cluster lineage on constructed runs where the right answer is known by construction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ops.risk import STATUSES, ClusterSet, LineageConfig, cluster_lineage


def run(
    clusters: dict[int, list[str]],
    centroids: dict[int, tuple[float, float]],
    risky: set[int] = frozenset(),
    devices: dict[int, str] | None = None,
) -> ClusterSet:
    rows = [
        {"txn_id": t, "cluster": c, "device_id": (devices or {}).get(c, f"dev-{t}")}
        for c, txns in clusters.items()
        for t in txns
    ]
    frame = pd.DataFrame.from_dict(centroids, orient="index", columns=["x", "y"])
    return ClusterSet(pd.DataFrame(rows), frame, frozenset(risky))


def txns(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


# Four previous clusters spread 10 apart: the typical separation is 10.
FAR = {0: (0.0, 0.0), 1: (10.0, 0.0), 2: (0.0, 10.0), 3: (10.0, 10.0)}


def by_cluster(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["cluster"] >= 0].set_index("cluster")


def test_shared_members_match_clusters_whose_ids_were_swapped() -> None:
    prev = run({0: txns("a", 20), 1: txns("b", 20), 2: txns("c", 5), 3: txns("d", 5)}, FAR)
    # Ids swapped, centroids moved far away: only the shared transactions can tell.
    curr = run({0: txns("b", 20), 1: txns("a", 20)}, {0: (50.0, 50.0), 1: (-50.0, -50.0)})
    table = by_cluster(cluster_lineage(prev, curr))
    assert table.loc[0, "previous"] == 1 and table.loc[1, "previous"] == 0
    assert (table["matched_by"] == "members").all()
    assert table.loc[0, "member_jaccard"] == pytest.approx(1.0)


def test_member_overlap_counts_only_transactions_both_windows_hold() -> None:
    # A rolling window: half of cluster 0's members left the window, half are new; the half
    # both windows hold all stayed together, so the match is perfect, not a third.
    prev = run({0: txns("old", 10) + txns("kept", 10), 1: txns("z", 10)}, FAR)
    curr = run({0: txns("kept", 10) + txns("fresh", 10)}, {0: (99.0, 99.0)})
    table = cluster_lineage(prev, curr)
    row = table[table["cluster"] == 0].iloc[0]
    assert row["previous"] == 0 and row["member_jaccard"] == pytest.approx(1.0)
    assert row["status"] == "continued"


def test_shared_devices_follow_a_ring_whose_transactions_are_all_new() -> None:
    prev = run({0: txns("a", 10), 1: txns("b", 10)}, FAR, risky={1}, devices={1: "ring-dev"})
    curr = run({4: txns("x", 30)}, {4: (77.0, -40.0)}, risky={4}, devices={4: "ring-dev"})
    row = by_cluster(cluster_lineage(prev, curr, ["device_id"])).loc[4]
    assert row["previous"] == 1 and row["matched_by"] == "entities"
    assert row["status"] == "grown" and not row["alert"], "a known risky ring is no news"


def test_centroid_distance_relative_to_the_previous_separation() -> None:
    prev = run({c: txns(f"p{c}", 10) for c in FAR}, FAR)
    near = {0: (1.0, 0.0), 1: (5.0, 5.0)}  # 0.1 and ~0.7 separations from the nearest
    curr = run({0: txns("q", 10), 1: txns("r", 10)}, near)
    table = by_cluster(cluster_lineage(prev, curr))
    assert table.loc[0, "previous"] == 0 and table.loc[0, "matched_by"] == "centroid"
    assert table.loc[0, "centroid_distance"] == pytest.approx(0.1)
    assert table.loc[1, "status"] == "new"
    # Scaling the whole space changes nothing: the threshold is relative.
    scaled = run(
        {c: txns(f"p{c}", 10) for c in FAR}, {c: (1000 * x, 1000 * y) for c, (x, y) in FAR.items()}
    )
    curr_scaled = run(
        {0: txns("q", 10), 1: txns("r", 10)},
        {c: (1000 * x, 1000 * y) for c, (x, y) in near.items()},
    )
    pd.testing.assert_frame_equal(
        by_cluster(cluster_lineage(scaled, curr_scaled))[["previous", "status"]],
        table[["previous", "status"]],
    )


def test_new_risky_cluster_alerts_and_unmatched_previous_clusters_vanish() -> None:
    prev = run({0: txns("a", 20), 1: txns("b", 20), 2: txns("c", 8)}, FAR, risky={2})
    curr = run(
        {0: txns("a", 40), 1: txns("b", 5), 2: txns("flash", 12)},
        {0: (0.0, 0.0), 1: (10.0, 0.0), 2: (30.0, -30.0)},
        risky={2},
    )
    table = cluster_lineage(prev, curr)
    current = by_cluster(table)
    assert current.loc[0, "status"] == "grown" and current.loc[1, "status"] == "shrunk"
    assert current.loc[2, "status"] == "new" and current.loc[2, "alert"]
    assert table["alert"].sum() == 1
    vanished = table[table["status"] == "vanished"]
    assert vanished["previous"].tolist() == [2] and vanished["previous_risky"].tolist() == [True]
    assert set(table["status"]) <= set(STATUSES)


def test_cluster_that_turns_risky_alerts_but_a_continuing_risky_one_does_not() -> None:
    prev = run({0: txns("a", 20), 1: txns("b", 20)}, FAR, risky={1})
    curr = run({0: txns("a", 20), 1: txns("b", 20)}, FAR, risky={0, 1})
    table = by_cluster(cluster_lineage(prev, curr))
    assert table["status"].eq("continued").all()
    assert table["alert"].tolist() == [True, False]


def test_noise_is_never_a_cluster_and_thresholds_are_configurable() -> None:
    prev = run({-1: txns("n", 50), 0: txns("a", 10), 1: txns("b", 10)}, FAR)
    # a4..a9 are in both windows but now noise: the overlap is 4 of 10.
    curr = run(
        {-1: txns("n", 50) + txns("a", 10)[4:], 0: txns("a", 4) + txns("x", 6)}, {0: (50.0, 50.0)}
    )
    table = cluster_lineage(prev, curr)
    assert -1 not in table["previous"].tolist()
    assert table.loc[table["cluster"] == 0, "member_jaccard"].iloc[0] == pytest.approx(0.4)
    strict = cluster_lineage(prev, curr, config=LineageConfig(min_member_jaccard=0.5))
    assert strict.loc[strict["cluster"] == 0, "status"].iloc[0] == "new"


def test_missing_centroid_or_entity_column_is_named() -> None:
    prev = run({0: txns("a", 5), 1: txns("b", 5)}, {0: (0.0, 0.0)})
    with pytest.raises(ValueError, match=r"previous run: no centroid for clusters \[1\]"):
        cluster_lineage(prev, run({0: txns("a", 5)}, {0: (0.0, 0.0)}))
    ok = run({0: txns("a", 5), 1: txns("b", 5)}, FAR)
    with pytest.raises(KeyError, match="user_id"):
        cluster_lineage(ok, ok, ["user_id"])


def test_first_run_has_nothing_to_match() -> None:
    empty = ClusterSet(
        pd.DataFrame({"txn_id": [], "cluster": []}), pd.DataFrame(columns=["x", "y"]), frozenset()
    )
    curr = run({0: txns("a", 5)}, {0: (0.0, 0.0)}, risky={0})
    table = cluster_lineage(empty, curr)
    assert table["status"].tolist() == ["new"] and table["alert"].tolist() == [True]
    assert np.isinf(table["centroid_distance"]).all()
