"""Risky branches: every node of the condensed tree is judged, not only the selected ones.

Excess-of-mass selects a cluster by its stability, so a ring's pure node is lost in two ways,
both measured on the synthetic worlds at 100k (benchmarks/README.md, "Detection at sizes"):

* *below* a selected cluster: when the ring sits inside a region of ordinary traffic (the
  travel world's booking bot: inside one cluster of 77 % of the window), the giant's
  stability outweighs the ring's branch, the giant is selected and judged ordinary;
* *above* selected clusters: a ring's node whose children were selected (and found risky)
  is not, and the ring transactions that fell out of it before it split are noise (the
  shop's timing bot).

So every node no larger than ``max_share`` of the window (the sibling pooling's bound,
`ops.risk.SiblingConfig`: a ring is a small part of the traffic) is judged, top-down from
the root, one level of disjoint nodes at a time, with the tests of a cluster
(`ops.risk.assess_risk`: labels and coordination against the whole window), except the
selected clusters (judged as clusters) and what lies inside a risky one. A node is flagged
whole, and not searched further, when

* at least ``min_labelled`` of its points are labelled and at least ``min_precision`` of
  them are fraud (the bar of the membership flag, `ops.risk.MembershipConfig`: a node that
  was not selected must be as precise as a flag, not merely riskier than the base rate), or
* it lies inside a selected cluster, is coordinated (``coordination_flag``) and its own
  labels do not rule it out. Above the selected clusters, a node's coordination is that of
  the clusters in it, which are judged themselves and pooled with their siblings
  (`ops.risk.pool_siblings`).

Larger nodes are only searched through.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ops.constants import NOISE
from ops.risk._risk import RiskConfig, assess_risk, label_threshold, wilson_lower_bound


@dataclass(frozen=True)
class BranchConfig:
    """Which branches are judged, and what a flagged one must show (see the module)."""

    max_share: float = 0.05
    min_precision: float = 0.95
    min_labelled: int = 20


@dataclass(frozen=True)
class CondensedTree:
    """hdbscan's condensed tree as a node hierarchy with each point's node.

    ``children`` maps a node to its child nodes; ``point_node`` is the node each point
    falls out of; ``start``/``end`` are each node's preorder interval (a node's subtree is
    the nodes whose ``start`` lies in ``[start, end)``), indexed by node id.
    """

    children: Mapping[int, list[int]]
    point_node: np.ndarray
    start: np.ndarray
    end: np.ndarray

    @classmethod
    def from_raw(cls, condensed: np.ndarray, n_points: int) -> CondensedTree:
        """Build from the raw tree (``parent``, ``child``, ``lambda_val``, ``child_size``)."""
        parent = condensed["parent"].astype(np.int64)
        child = condensed["child"].astype(np.int64)
        is_point = condensed["child_size"].astype(np.int64) == 1
        is_point &= child < n_points
        children: dict[int, list[int]] = {}
        for p, c in zip(parent[~is_point], child[~is_point], strict=True):
            children.setdefault(int(p), []).append(int(c))
        point_node = np.full(n_points, -1, dtype=np.int64)
        point_node[child[is_point]] = parent[is_point]
        top = int(max(parent.max(initial=n_points), child.max(initial=n_points))) + 1
        start, end = np.zeros(top, dtype=np.int64), np.zeros(top, dtype=np.int64)
        clock, stack = 0, [(n_points, False)]
        while stack:  # iterative preorder: a deep tree must not hit the recursion limit
            node, done = stack.pop()
            if done:
                end[node] = clock
                continue
            start[node] = clock
            clock += 1
            stack.append((node, True))
            stack.extend((c, False) for c in children.get(node, []))
        return cls(children, point_node, start, end)

    def under(self, nodes: Sequence[int]) -> np.ndarray:
        """For each point, the one of the disjoint ``nodes`` it lies under, else -1."""
        nodes = np.asarray(nodes, dtype=np.int64)
        out = np.full(len(self.point_node), -1, dtype=np.int64)
        if not len(nodes):
            return out
        order = np.argsort(self.start[nodes])
        nodes, starts = nodes[order], self.start[nodes[order]]
        placed = self.point_node >= 0
        at = self.start[self.point_node[placed]]
        i = np.searchsorted(starts, at, side="right") - 1
        inside = (i >= 0) & (at < self.end[nodes[np.maximum(i, 0)]])
        out[np.flatnonzero(placed)[inside]] = nodes[i[inside]]
        return out


def risky_branches(
    frame: pd.DataFrame,
    tree: CondensedTree,
    cluster_nodes: Mapping[int, int],
    risky_clusters: Collection[int],
    *,
    config: RiskConfig | None = None,
    branches: BranchConfig | None = None,
    id_columns: Sequence[str] = (),
    embeddings: np.ndarray | None = None,
    age_column: str = "account_age_days",
) -> pd.DataFrame:
    """Judge every unselected node of the condensed tree outside risky clusters.

    See the module for which nodes are judged and what flags one.

    Parameters
    ----------
    frame, id_columns, embeddings, age_column, config
        As given to `ops.risk.assess_risk`; ``frame``'s rows are the tree's points.
    tree : CondensedTree
        The clusterer's condensed tree.
    cluster_nodes : mapping
        Flat cluster to its node (`ops.risk.cluster_parents`' ``node``).
    risky_clusters : collection
        Clusters already risky (nothing inside them is searched).
    branches : BranchConfig, optional
        Size bound and the labelled precision a branch must reach.

    Returns
    -------
    DataFrame
        One row per flagged node: ``node``, ``cluster`` (the selected cluster it lies
        in, -1 above the selected clusters), ``size``, ``n_labelled``, ``n_fraud``,
        ``coordination_flag`` and ``risk_reason``; ``attrs["point_node"]``: per row of
        ``frame``, its flagged node or -1.
    """
    cfg, bcfg = config or RiskConfig(), branches or BranchConfig()
    limit = bcfg.max_share * len(frame)
    risky = {int(c) for c in risky_clusters}
    selected = {int(node): int(c) for c, node in cluster_nodes.items()}
    root = len(tree.point_node)
    # the selected cluster each node lies in, -1 above them
    within = {child: -1 for child in tree.children.get(root, [])}
    frontier = sorted(within)
    flagged = np.full(len(frame), -1, dtype=np.int64)
    rows: list[pd.DataFrame] = []
    while frontier:
        for node in frontier:
            within[node] = selected.get(node, within[node])
        # a risky cluster is flagged whole already; a selected one was judged as a cluster
        frontier = [n for n in frontier if selected.get(n) not in risky]
        key = tree.under(frontier)
        size = pd.Series(key[key >= 0]).value_counts()
        judged = size.index[(size <= limit) & ~size.index.isin(list(selected))]
        done: set[int] = set()
        if len(judged):
            risk = assess_risk(
                frame.assign(cluster=np.where(np.isin(key, judged), key, NOISE)),
                id_columns=id_columns,
                embeddings=embeddings,
                age_column=age_column,
                config=cfg,
            )
            in_cluster = risk["cluster"].map(within).fillna(-1).to_numpy() >= 0
            hit = _verdict(risk, cfg, bcfg, in_cluster)
            hit = hit.loc[hit["flag"]].rename(columns={"cluster": "node"})
            done = {int(n) for n in hit["node"]}
            inside = np.isin(key, list(done))
            flagged[inside] = key[inside]
            rows.append(hit.assign(cluster=hit["node"].map(within)))
        nxt = []
        for node in frontier:
            if node in done:
                continue
            for child in tree.children.get(node, []):
                within[child] = within[node]
                nxt.append(child)
        frontier = nxt
    columns = ["node", "cluster", "size", "n_labelled", "n_fraud", "coordination_flag"]
    out = (
        pd.concat(rows, ignore_index=True)[[*columns, "risk_reason"]]
        if rows
        else pd.DataFrame(columns=[*columns, "risk_reason"])
    )
    out.attrs["point_node"] = flagged
    return out


def _verdict(
    risk: pd.DataFrame, cfg: RiskConfig, bcfg: BranchConfig, in_cluster: np.ndarray
) -> pd.DataFrame:
    """``risk`` with ``flag``: precise labels, or coordination inside a cluster.

    ``in_cluster`` marks the nodes that lie inside a selected cluster: only those may be
    flagged by coordination, and only where their own labels do not rule them out.
    """
    n_lab = risk["n_labelled"].to_numpy(dtype=np.float64)
    n_fraud = risk["n_fraud"].to_numpy(dtype=np.float64)
    precise = (n_lab >= bcfg.min_labelled) & (n_fraud >= bcfg.min_precision * np.maximum(n_lab, 1))
    upper = 1.0 - wilson_lower_bound(n_lab - n_fraud, n_lab, cfg.labels.z)
    threshold = label_threshold(risk.attrs.get("base_rate", float("nan")), cfg.labels)
    ruled_out = (n_lab >= cfg.labels.min_labelled) & (upper < threshold)
    coordinated = risk["coordination_flag"].fillna(False).to_numpy(dtype=bool) & ~ruled_out
    coordinated &= in_cluster
    out = risk.assign(flag=(precise | coordinated) & (risk["cluster"] != NOISE).to_numpy())
    counts = zip(n_fraud, n_lab, strict=True)
    reason = np.where(
        precise,
        [f"labels: {f:.0f}/{n:.0f} labelled are fraud" for f, n in counts],
        out["risk_reason"].to_numpy(dtype=object),
    )
    return out.assign(risk_reason=reason)
