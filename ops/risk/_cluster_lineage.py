"""Cluster lineage: which clusters of a new window continue, grow, shrink, appear or vanish.

Cluster ids mean nothing across runs, so a cluster is followed by evidence that survives a
retrain: the transactions both windows share (rolling windows overlap), the accounts and
devices its members use (a ring keeps its devices while its transactions are all new), and
where its centre lies in a space both runs are described in (a ring seen again with fresh
accounts and devices still buys the same way). Any one of the three suffices to match.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

STATUSES = ("continued", "grown", "shrunk", "new", "vanished")
COLUMNS = [
    "cluster",
    "previous",
    "status",
    "matched_by",
    "strength",
    "member_jaccard",
    "entity_jaccard",
    "centroid_distance",
    "size",
    "previous_size",
    "risky",
    "previous_risky",
    "alert",
]


@dataclass(frozen=True)
class ClusterSet:
    """One run's clustering.

    ``members``: one row per transaction with ``txn_id``, ``cluster`` (negative = noise) and any
    entity columns; ``centroids``: one row per cluster id (the index) in a space shared with the
    run it is compared to; ``risky``: the ids of its risky clusters.
    """

    members: pd.DataFrame
    centroids: pd.DataFrame
    risky: frozenset[int]

    def sizes(self) -> pd.Series:
        labels = self.members["cluster"]
        return labels[labels >= 0].value_counts().sort_index()


@dataclass(frozen=True)
class LineageConfig:
    """Each threshold alone is enough to call two clusters the same cluster."""

    min_member_jaccard: float = 0.3
    min_entity_jaccard: float = 0.3
    # In units of the previous run's typical separation between neighbouring clusters, so the
    # threshold does not depend on the space's scale or dimension.
    max_centroid_distance: float = 0.35
    growth: float = 1.5  # size ratio beyond which a continued cluster has grown or shrunk


def _jaccard(pairs: pd.DataFrame, key: str, prev_ids: pd.Index, curr_ids: pd.Index) -> np.ndarray:
    """Jaccard of the ``key`` sets of every (previous, current) cluster pair, ``[n_prev, n_curr]``.

    ``pairs`` has ``cluster``, ``key`` and ``side`` (0 previous, 1 current).
    """
    out = np.zeros((len(prev_ids), len(curr_ids)))
    prev = pairs.loc[pairs["side"] == 0, ["cluster", key]].drop_duplicates()
    curr = pairs.loc[pairs["side"] == 1, ["cluster", key]].drop_duplicates()
    if prev.empty or curr.empty:
        return out
    both = prev.merge(curr, on=key, suffixes=("_p", "_c"))
    shared = both.groupby(["cluster_p", "cluster_c"]).size()
    n_prev = prev.groupby("cluster").size().reindex(prev_ids, fill_value=0).to_numpy()
    n_curr = curr.groupby("cluster").size().reindex(curr_ids, fill_value=0).to_numpy()
    rows = prev_ids.get_indexer(shared.index.get_level_values(0))
    cols = curr_ids.get_indexer(shared.index.get_level_values(1))
    inter = shared.to_numpy()
    out[rows, cols] = inter / (n_prev[rows] + n_curr[cols] - inter)
    return out


def _sides(previous: pd.DataFrame, current: pd.DataFrame, key: str) -> pd.DataFrame:
    frames = [
        f.loc[(f["cluster"] >= 0) & f[key].notna(), ["cluster", key]].assign(side=s)
        for s, f in ((0, previous), (1, current))
    ]
    return pd.concat(frames, ignore_index=True)


def member_jaccard(
    previous: pd.DataFrame, current: pd.DataFrame, prev_ids: pd.Index, curr_ids: pd.Index
) -> np.ndarray:
    """Jaccard of members, counted only over the transactions both runs clustered."""
    shared = np.intersect1d(previous["txn_id"].to_numpy(), current["txn_id"].to_numpy())
    prev = previous[previous["txn_id"].isin(shared)]
    curr = current[current["txn_id"].isin(shared)]
    return _jaccard(_sides(prev, curr, "txn_id"), "txn_id", prev_ids, curr_ids)


def entity_jaccard(
    previous: pd.DataFrame,
    current: pd.DataFrame,
    columns: Sequence[str],
    prev_ids: pd.Index,
    curr_ids: pd.Index,
) -> np.ndarray:
    """Per pair, the highest Jaccard of the entities (accounts, devices…) members use."""
    out = np.zeros((len(prev_ids), len(curr_ids)))
    for column in columns:
        if column not in previous or column not in current:
            raise KeyError(f"entity column '{column}' is missing from one of the runs")
        sides = _sides(previous, current, column)
        sides[column] = sides[column].astype(str)
        out = np.maximum(out, _jaccard(sides, column, prev_ids, curr_ids))
    return out


def centroid_distance(previous: pd.DataFrame, current: pd.DataFrame) -> np.ndarray:
    """Distances between centres over the previous run's median nearest-neighbour separation.

    With fewer than two previous clusters there is no separation to compare with: infinite.
    """
    p = previous.to_numpy(dtype=np.float64)
    c = current.to_numpy(dtype=np.float64)
    if p.shape[1] != c.shape[1]:
        raise ValueError(f"centroids differ in width: {p.shape[1]} vs {c.shape[1]}")
    d = np.sqrt(((p[:, None, :] - c[None, :, :]) ** 2).sum(axis=2))
    if len(p) < 2:
        return np.full(d.shape, np.inf)
    within = np.sqrt(((p[:, None, :] - p[None, :, :]) ** 2).sum(axis=2))
    np.fill_diagonal(within, np.inf)
    scale = float(np.median(within.min(axis=1)))
    return d / scale if scale > 0 else np.full(d.shape, np.inf)


def cluster_lineage(
    previous: ClusterSet,
    current: ClusterSet,
    entity_columns: Sequence[str] = (),
    config: LineageConfig | None = None,
) -> pd.DataFrame:
    """Match the current clusters with the previous ones.

    One row per current cluster (its best previous match, or ``new``), then one per
    previous cluster no current cluster matches (``vanished``, ``cluster`` = -1).

    ``strength`` is the strongest evidence as a multiple of its threshold (>= 1 is a match);
    ``alert`` marks a risky cluster that is new or whose match was not risky.
    """
    config = config or LineageConfig()
    prev_sizes, curr_sizes = previous.sizes(), current.sizes()
    prev_ids, curr_ids = pd.Index(prev_sizes.index), pd.Index(curr_sizes.index)
    for run, ids in (("previous", prev_ids), ("current", curr_ids)):
        centroids = (previous if run == "previous" else current).centroids
        missing = ids.difference(centroids.index)
        if len(missing):
            raise ValueError(f"{run} run: no centroid for clusters {sorted(missing.tolist())}")
    members = member_jaccard(previous.members, current.members, prev_ids, curr_ids)
    entities = entity_jaccard(previous.members, current.members, entity_columns, prev_ids, curr_ids)
    distance = centroid_distance(previous.centroids.loc[prev_ids], current.centroids.loc[curr_ids])
    evidence = np.stack(
        [
            members / config.min_member_jaccard,
            entities / config.min_entity_jaccard,
            np.divide(
                config.max_centroid_distance,
                distance,
                out=np.full(distance.shape, np.inf),
                where=distance > 0,
            ),
        ]
    )
    strength = evidence.max(axis=0)  # [n_prev, n_curr]
    rows: list[dict[str, object]] = []
    for j, cluster in enumerate(curr_ids):
        risky = int(cluster) in current.risky
        size = int(curr_sizes.loc[cluster])
        i = int(np.argmax(strength[:, j])) if len(prev_ids) else -1
        if i < 0 or strength[i, j] < 1:
            rows.append(_row(int(cluster), -1, "new", "", size, 0, risky, False))
            if i >= 0:
                rows[-1].update(_evidence(members, entities, distance, strength, i, j))
            continue
        prev = int(prev_ids[i])
        ratio = size / int(prev_sizes.loc[prev])
        status = (
            "grown"
            if ratio >= config.growth
            else "shrunk"
            if ratio <= 1 / config.growth
            else "continued"
        )
        by = ("members", "entities", "centroid")[int(np.argmax(evidence[:, i, j]))]
        row = _row(
            int(cluster),
            prev,
            status,
            by,
            size,
            int(prev_sizes.loc[prev]),
            risky,
            previous_risky=prev in previous.risky,
        )
        row.update(_evidence(members, entities, distance, strength, i, j))
        rows.append(row)
    for i, prev in enumerate(prev_ids):
        if not (strength[i] >= 1).any():
            rows.append(
                _row(
                    -1,
                    int(prev),
                    "vanished",
                    "",
                    0,
                    int(prev_sizes.loc[prev]),
                    False,
                    previous_risky=int(prev) in previous.risky,
                )
            )
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.astype({"alert": bool, "risky": bool, "previous_risky": bool})


def _row(
    cluster: int,
    previous: int,
    status: str,
    matched_by: str,
    size: int,
    previous_size: int,
    risky: bool,
    previous_risky: bool,
) -> dict[str, object]:
    return {
        "cluster": cluster,
        "previous": previous,
        "status": status,
        "matched_by": matched_by,
        "strength": 0.0,
        "member_jaccard": 0.0,
        "entity_jaccard": 0.0,
        "centroid_distance": np.inf,
        "size": size,
        "previous_size": previous_size,
        "risky": risky,
        "previous_risky": previous_risky,
        "alert": risky and (status == "new" or not previous_risky),
    }


def _evidence(
    members: np.ndarray,
    entities: np.ndarray,
    distance: np.ndarray,
    strength: np.ndarray,
    i: int,
    j: int,
) -> dict[str, float]:
    """The best previous candidate's evidence (also shown for a new cluster: how close it came)."""
    return {
        "strength": float(strength[i, j]),
        "member_jaccard": float(members[i, j]),
        "entity_jaccard": float(entities[i, j]),
        "centroid_distance": float(distance[i, j]),
    }
