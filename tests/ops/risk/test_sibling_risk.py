"""Sibling clusters of one ring are judged together, never dragging a clean sibling in."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ops.risk import SiblingConfig, assess_risk, cluster_parents, pool_siblings

TREE_DTYPE = [
    ("parent", np.intp),
    ("child", np.intp),
    ("lambda_val", float),
    ("child_size", np.intp),
]
#: cluster -> (size, labelled fraud, labelled legit); 0 and 1 are one ring cut in two, 2 is
#: their clean sibling, 3 ordinary traffic elsewhere in the tree
CLUSTERS = {0: (30, 3, 0), 1: (30, 4, 0), 2: (40, 0, 30), 3: (1_900, 2, 600)}


def _window() -> tuple[pd.DataFrame, np.ndarray]:
    """Transactions and a condensed tree: root -> {A -> {0, 1, 2}, 3}."""
    rows, labels = [], []
    for c, (size, fraud, legit) in CLUSTERS.items():
        label = np.full(size, np.nan)
        label[:fraud] = 1.0
        label[fraud : fraud + legit] = 0.0
        rows.append(pd.DataFrame({"cluster": c, "label": label}))
        labels.append(np.full(size, c))
    frame = pd.concat(rows, ignore_index=True)
    frame["ts"] = np.arange(len(frame), dtype=float)
    labels = np.concatenate(labels)
    n = len(labels)
    root, a = n, n + 1
    node = {0: n + 2, 1: n + 3, 2: n + 4, 3: n + 5}
    ring = sum(CLUSTERS[c][0] for c in (0, 1, 2))
    tree = [(root, a, 0.1, ring), (root, node[3], 0.1, CLUSTERS[3][0])]
    tree += [(a, node[c], 0.5, CLUSTERS[c][0]) for c in (0, 1, 2)]
    tree += [(node[c], i, 1.0, 1) for i, c in enumerate(labels)]
    return frame, np.array(tree, dtype=TREE_DTYPE)


def test_parents_are_read_from_the_condensed_tree() -> None:
    frame, tree = _window()
    parents = cluster_parents(tree, frame["cluster"].to_numpy())
    n = len(frame)
    assert parents["parent"].tolist() == [n + 1, n + 1, n + 1, n]
    assert parents["parent_size"].tolist() == [100, 100, 100, n]


def test_siblings_too_small_to_judge_alone_are_judged_as_their_parent() -> None:
    frame, tree = _window()
    risk = assess_risk(frame)
    assert not risk.set_index("cluster").loc[[0, 1], "risky"].any()  # under min_labelled
    parents = cluster_parents(tree, frame["cluster"].to_numpy())
    pooled = pool_siblings(frame, risk, parents).set_index("cluster")
    # 7 of 7 labelled fraud together, while their clean sibling (30 legit) is ruled out
    assert pooled.loc[[0, 1], "sibling_flag"].all() and pooled.loc[[0, 1], "risky"].all()
    assert pooled.loc[0, "pool_clusters"] == [0, 1] and pooled.loc[0, "pool_risky"]
    assert pooled.loc[0, "risk_reason"].startswith("with its siblings (clusters 1): labels: 7/7")
    assert not pooled.loc[2, "risky"] and not pooled.loc[3, "risky"]
    assert pooled.loc[2, "pool_clusters"] == [] and pooled.loc[2, "parent"] == len(frame) + 1
    assert pooled.loc[3, "parent"] == -1  # its parent, the root, is the whole window


def test_parents_above_the_size_limit_are_not_pooled() -> None:
    frame, tree = _window()
    risk = assess_risk(frame)
    parents = cluster_parents(tree, frame["cluster"].to_numpy())
    tight = pool_siblings(frame, risk, parents, siblings=SiblingConfig(max_parent_share=0.04))
    assert not tight["risky"].any() and (tight["parent"] == -1).all()
