"""A ring hidden in a branch of a large ordinary cluster is judged and flagged."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ops.risk import BranchConfig, TreeNodes, assess_risk, cluster_parents, risky_branches

TREE_DTYPE = [
    ("parent", np.intp),
    ("child", np.intp),
    ("lambda_val", float),
    ("child_size", np.intp),
]
#: the selected giant G holds a ring branch R (pure fraud), a mixed branch M (half fraud)
#: and a branch B (clean), each splitting once more; plus points that fall out of G itself;
#: a second selected cluster O is ordinary traffic
RING, MIXED, CLEAN, LOOSE, OTHER = 60, 60, 600, 400, 880


def _window() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Transactions, a condensed tree root -> {G -> {R -> {R1, R2}, M, B -> {B1, B2}}, O}."""
    n = RING + MIXED + CLEAN + LOOSE + OTHER
    root, g, o, r, m, b, r1, r2, b1, b2 = range(n, n + 10)
    label = np.full(n, np.nan)
    node = np.empty(n, dtype=np.int64)
    at = 0
    for where, size, fraud in (
        ((r1, r2), RING, 1.0),
        ((m,), MIXED, None),
        ((b1, b2), CLEAN, 0.0),
        ((g,), LOOSE, 0.0),
        ((o,), OTHER, 0.0),
    ):
        span = np.arange(at, at + size)
        node[span] = np.array(where)[np.arange(size) * len(where) // size]
        label[span[::2]] = fraud if fraud is not None else (np.arange(len(span[::2])) % 2)
        at += size
    cluster = np.where(node == o, 1, 0)
    tree = [
        (root, g, 0.1, RING + MIXED + CLEAN + LOOSE),
        (root, o, 0.1, OTHER),
        (g, r, 0.5, RING),
        (g, m, 0.5, MIXED),
        (g, b, 0.5, CLEAN),
        (r, r1, 0.8, RING // 2),
        (r, r2, 0.8, RING // 2),
        (b, b1, 0.8, CLEAN // 2),
        (b, b2, 0.8, CLEAN // 2),
    ]
    tree += [(int(node[i]), i, 1.0, 1) for i in range(n)]
    frame = pd.DataFrame({"cluster": cluster, "label": label, "ts": np.arange(n, dtype=float)})
    return frame, np.array(tree, dtype=TREE_DTYPE), node


def test_points_are_placed_under_disjoint_nodes() -> None:
    frame, raw, node = _window()
    tree = TreeNodes.from_raw(raw, len(frame))
    n = len(frame)
    g, r, b = n + 1, n + 3, n + 5
    under = tree.under([r, b])
    assert (under[np.isin(node, [n + 6, n + 7])] == r).all()  # R1 and R2 lie under R
    assert (under[np.isin(node, [n + 8, n + 9])] == b).all()
    assert (under[np.isin(node, [g, n + 2, n + 4])] == -1).all()  # G itself, O, M
    assert (tree.under([g])[node != n + 2] == g).all()


def test_a_pure_branch_of_an_ordinary_cluster_is_flagged() -> None:
    frame, raw, node = _window()
    n = len(frame)
    risk = assess_risk(frame)
    assert not risk["risky"].any()  # the ring is 6 % of its cluster
    nodes = cluster_parents(raw, frame["cluster"].to_numpy())["node"].to_dict()
    out = risky_branches(frame, TreeNodes.from_raw(raw, n), nodes, [])
    # R is flagged whole (its children are not searched); M (half fraud) and B (clean) not
    assert out["node"].tolist() == [n + 3] and out["cluster"].tolist() == [0]
    assert out["risk_reason"].iloc[0] == "labels: 30/30 labelled are fraud"
    flagged = out.attrs["point_node"] >= 0
    assert (flagged == np.isin(node, [n + 6, n + 7])).all()


def test_branches_of_risky_clusters_and_large_branches_are_not_judged() -> None:
    frame, raw, _ = _window()
    tree = TreeNodes.from_raw(raw, len(frame))
    nodes = cluster_parents(raw, frame["cluster"].to_numpy())["node"].to_dict()
    assert risky_branches(frame, tree, nodes, [0]).empty  # its cluster is risky already
    # R is 3 % of the window: with a bound of 2 % only its halves (15 labelled each) are
    # judged, too few labelled to reach the bar
    small = risky_branches(frame, tree, nodes, [], branches=BranchConfig(max_share=0.02))
    assert small.empty
    fewer = BranchConfig(max_share=0.02, min_labelled=10)
    assert len(risky_branches(frame, tree, nodes, [], branches=fewer)) == 2


def test_the_ring_fallen_out_above_its_risky_clusters_is_flagged() -> None:
    # root -> {A -> {S, T}, O}: S and T are the ring's selected (risky) clusters, 30 of its
    # transactions fell out of A before it split (noise), O is ordinary traffic
    sizes = {"S": 40, "T": 30, "A": 30, "O": 2_000}
    n = sum(sizes.values())
    root, a, s, t, o = range(n, n + 5)
    node = np.repeat([s, t, a, o], list(sizes.values()))
    cluster = np.select([node == s, node == t, node == o], [0, 2, 1], default=-1)
    label = np.where(np.arange(n) % 2 == 0, np.where(node == o, 0.0, 1.0), np.nan)
    raw = [(root, a, 0.1, 100), (root, o, 0.1, 2_000), (a, s, 0.5, 40), (a, t, 0.5, 30)]
    raw += [(int(node[i]), i, 1.0, 1) for i in range(n)]
    raw = np.array(raw, dtype=TREE_DTYPE)
    frame = pd.DataFrame({"cluster": cluster, "label": label, "ts": np.arange(n, dtype=float)})
    nodes = cluster_parents(raw, cluster)["node"].to_dict()
    out = risky_branches(frame, TreeNodes.from_raw(raw, n), nodes, [0, 2])
    assert out["node"].tolist() == [a] and out["cluster"].tolist() == [-1]
    assert ((out.attrs["point_node"] >= 0) == (node != o)).all()  # the noise with them
    # without its risky clusters the same node is judged whole as well; O never is
    assert risky_branches(frame, TreeNodes.from_raw(raw, n), nodes, [])["node"].tolist() == [a]
