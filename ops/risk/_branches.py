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
the root, one level of disjoint nodes at a time, except the selected clusters (judged as
clusters) and what lies inside a risky one. A node is flagged whole, and not searched
further, when at least ``min_labelled`` of its points are labelled and at least
``min_precision`` of them are fraud: the bar of the membership flag
(`ops.risk.MembershipConfig`), since a node that was not selected must be as precise as a
flag, not merely riskier than the base rate. Larger nodes are only searched through.

Only labels judge a node. Judging coordination too (`ops.risk.assess_risk` over the window
at each level) flagged no node on the three worlds at 100k and made the evaluate stage ~6x
slower (4.6 s to 27 s on the shop at 100k); labels per node are counted by binary search.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class BranchConfig:
    """Which branches are judged, and what a flagged one must show (see the module)."""

    max_share: float = 0.05
    min_precision: float = 0.95
    min_labelled: int = 20


@dataclass(frozen=True)
class TreeNodes:
    """The nodes of hdbscan's condensed tree, their children and each point's node.

    ``children`` maps a node to its child nodes; ``point_node`` is the node each point
    falls out of; ``start``/``end`` are each node's preorder interval (a node's subtree is
    the nodes whose ``start`` lies in ``[start, end)``), indexed by node id.
    """

    children: Mapping[int, list[int]]
    point_node: np.ndarray
    start: np.ndarray
    end: np.ndarray

    @classmethod
    def from_raw(cls, condensed: np.ndarray, n_points: int) -> TreeNodes:
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
    tree: TreeNodes,
    cluster_nodes: Mapping[int, int],
    risky_clusters: Collection[int],
    branches: BranchConfig | None = None,
) -> pd.DataFrame:
    """Judge every unselected node of the condensed tree outside risky clusters.

    See the module for which nodes are judged and what flags one.

    Parameters
    ----------
    frame : DataFrame
        The tree's points, in order, with ``label`` (float 0/1, NaN unlabelled).
    tree : TreeNodes
        The clusterer's condensed tree's nodes.
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
        in, -1 above the selected clusters), ``size``, ``n_labelled``, ``n_fraud`` and
        ``risk_reason``; ``attrs["point_node"]``: per row of ``frame``, its flagged node
        or -1.
    """
    bcfg = branches or BranchConfig()
    limit = bcfg.max_share * len(frame)
    label = pd.to_numeric(frame["label"], errors="coerce")
    labelled = label.notna().to_numpy(dtype=bool)
    fraud = label.eq(1).fillna(False).to_numpy(dtype=bool)  # unlabelled: not fraud
    risky = {int(c) for c in risky_clusters}
    selected = {int(node): int(c) for c, node in cluster_nodes.items()}
    root = len(tree.point_node)
    # the selected cluster each node lies in, -1 above them
    within = {child: -1 for child in tree.children.get(root, [])}
    frontier = sorted(within)
    counts_under = _SubtreeCounts(tree, labelled, fraud)
    flagged_nodes: list[int] = []
    rows: list[pd.DataFrame] = []
    while frontier:
        for node in frontier:
            within[node] = selected.get(node, within[node])
        # a risky cluster is flagged whole already; a selected one was judged as a cluster
        frontier = [n for n in frontier if selected.get(n) not in risky]
        counts = counts_under.of(frontier)
        judged = (counts["size"] <= limit) & ~counts.index.isin(list(selected))
        precise = (counts["n_labelled"] >= bcfg.min_labelled) & (
            counts["n_fraud"] >= bcfg.min_precision * counts["n_labelled"]
        )
        hit = counts.loc[judged & precise].rename_axis("node").reset_index()
        done = {int(n) for n in hit["node"]}
        if done:
            flagged_nodes.extend(sorted(done))
            reason = [
                f"labels: {f}/{n} labelled are fraud"
                for f, n in zip(hit["n_fraud"], hit["n_labelled"], strict=True)
            ]
            rows.append(hit.assign(cluster=hit["node"].map(within), risk_reason=reason))
        nxt = []
        for node in frontier:
            if node in done:
                continue
            for child in tree.children.get(node, []):
                within[child] = within[node]
                nxt.append(child)
        frontier = nxt
    columns = ["node", "cluster", "size", "n_labelled", "n_fraud", "risk_reason"]
    out = pd.concat(rows, ignore_index=True)[columns] if rows else pd.DataFrame(columns=columns)
    # flagged nodes are disjoint: the search never goes below one
    out.attrs["point_node"] = tree.under(flagged_nodes)
    return out


class _SubtreeCounts:
    """Points, labelled points and fraud under any node, by binary search.

    A point lies under a node when its own node's preorder position is in the node's
    interval, so with the positions sorted once, a node's count is two binary searches. A
    pass over every point per level of the tree made the branches' search grow with depth x
    points (67 levels at 1M points, 85 at 3M).
    """

    def __init__(self, tree: TreeNodes, labelled: np.ndarray, fraud: np.ndarray) -> None:
        placed = tree.point_node >= 0
        at = tree.start[tree.point_node[placed]]
        self.start, self.end = tree.start, tree.end
        self.sorted_at = {
            "size": np.sort(at),
            "n_labelled": np.sort(at[labelled[placed]]),
            "n_fraud": np.sort(at[fraud[placed]]),
        }

    def of(self, nodes: Sequence[int]) -> pd.DataFrame:
        """``size``, ``n_labelled`` and ``n_fraud`` of the nodes with a point, by node."""
        nodes = np.unique(np.asarray(nodes, dtype=np.int64))
        start, end = self.start[nodes], self.end[nodes]
        counts = pd.DataFrame(
            {
                name: np.searchsorted(at, end) - np.searchsorted(at, start)
                for name, at in self.sorted_at.items()
            },
            index=pd.Index(nodes, name="node"),
        )
        return counts[counts["size"] > 0]
