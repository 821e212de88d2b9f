"""Hierarchy-aware risk: a ring split into sibling clusters is also judged as their parent.

HDBSCAN's excess-of-mass selection often cuts one ring into sibling clusters of the condensed
tree. Each may be too small to carry enough labels, or show its coordination too weakly,
to be judged alone, while together they are plainly one ring. So the selected clusters that
share a parent node no larger than ``max_parent_share`` of the window are pooled and the pool
is judged with the same `ops.risk.assess_risk` (labels and coordination, against the whole
window's base rate, id population and time span), and each sibling inherits a risky pool's
verdict. A sibling whose own labels rule it out (enough of them, with the upper Wilson
bound of its fraud rate under the label threshold) is left out of the pool, so a clean
sibling neither hides the ring's labels nor is dragged in by them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ops.risk._risk import RiskConfig, assess_risk, label_threshold, wilson_lower_bound


@dataclass(frozen=True)
class SiblingConfig:
    """Which parents are judged: no larger than this share of the window's transactions.

    A ring is a small part of the traffic at any window size; a parent holding more than a
    twentieth of the window is a region of ordinary traffic, not one ring.
    """

    max_parent_share: float = 0.05


def cluster_parents(condensed: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """Per flat cluster: its node in the condensed tree, its parent node and that one's size.

    ``condensed`` is hdbscan's raw condensed tree (``parent``, ``child``, ``lambda_val``,
    ``child_size``) and ``labels`` the flat labels. A label's node is the smallest parent id
    among its points, as hdbscan's prediction data chooses it; the root's parent is -1.

    Returns
    -------
    DataFrame
        Indexed by ``cluster``: ``node``, ``parent``, ``parent_size``.
    """
    labels = np.asarray(labels)
    n = len(labels)
    parent = condensed["parent"].astype(np.int64)
    child = condensed["child"].astype(np.int64)
    size = condensed["child_size"].astype(np.int64)
    is_point = size == 1
    point_label = labels[child[is_point]]
    known = point_label >= 0
    node = pd.Series(parent[is_point][known]).groupby(point_label[known]).min()
    node.index.name = "cluster"
    parent_of = pd.Series(parent[~is_point], index=child[~is_point])
    size_of = pd.concat(
        [pd.Series([n], index=[n]), pd.Series(size[~is_point], index=child[~is_point])]
    )
    parents = parent_of.reindex(node.to_numpy()).fillna(-1).astype(np.int64).to_numpy()
    parent_size = size_of.reindex(parents).fillna(n).astype(np.int64).to_numpy()
    return pd.DataFrame(
        {"node": node.to_numpy(), "parent": parents, "parent_size": parent_size},
        index=node.index,
    )


def pool_siblings(
    frame: pd.DataFrame,
    risk: pd.DataFrame,
    parents: pd.DataFrame,
    *,
    config: RiskConfig | None = None,
    siblings: SiblingConfig | None = None,
    id_columns: Sequence[str] = (),
    embeddings: np.ndarray | None = None,
    age_column: str = "account_age_days",
) -> pd.DataFrame:
    """Judge sibling clusters together and let them inherit a risky parent's verdict.

    Parameters
    ----------
    frame, id_columns, embeddings, age_column, config
        As given to `ops.risk.assess_risk`, which produced ``risk``.
    risk : DataFrame
        `ops.risk.assess_risk`'s per-cluster table.
    parents : DataFrame
        `cluster_parents`.
    siblings : SiblingConfig, optional
        The size limit on a judged parent.

    Returns
    -------
    DataFrame
        ``risk`` with ``parent`` (the parent node when it is small enough to be judged,
        else -1), ``pool_clusters`` (the siblings pooled, a list), ``pool_risky`` (the
        pool is risky), ``sibling_flag`` (risky only through its pool); ``risky`` and
        ``risk_reason`` updated.
    """
    cfg = config or RiskConfig()
    limit = (siblings or SiblingConfig()).max_parent_share * len(frame)
    out = risk.copy()
    out["parent"], out["pool_risky"], out["sibling_flag"] = -1, False, False
    out["pool_clusters"] = [[] for _ in range(len(out))]
    # a sibling whose own labels rule it out stays out of the pool: its clean labels would
    # hide the ring's, and it must not inherit the ring's verdict either
    own = risk.set_index("cluster").reindex(parents.index)
    n_lab = own["n_labelled"].to_numpy(dtype=np.float64)
    upper = 1.0 - wilson_lower_bound(n_lab - own["n_fraud"].to_numpy(), n_lab, cfg.labels.z)
    threshold = label_threshold(risk.attrs.get("base_rate", float("nan")), cfg.labels)
    ruled_out = (n_lab >= cfg.labels.min_labelled) & (upper < threshold)
    small = parents[parents["parent_size"] <= limit]
    out["parent"] = out["cluster"].map(small["parent"]).fillna(-1).astype(np.int64)
    shared = small[~ruled_out[parents["parent_size"] <= limit]]
    shared = shared.groupby("parent").filter(lambda g: len(g) >= 2)
    if shared.empty:
        return out
    pool_of = shared["parent"]
    cluster = frame["cluster"].to_numpy()
    key = pd.Series(cluster).map(pool_of).fillna(pd.Series(cluster)).to_numpy(dtype=np.int64)
    pooled = assess_risk(
        frame.assign(cluster=key),
        id_columns=id_columns,
        embeddings=embeddings,
        age_column=age_column,
        config=cfg,
    ).set_index("cluster")

    rows = out.set_index("cluster")
    members = shared.groupby("parent").groups
    for node, clusters in members.items():
        ids = sorted(int(c) for c in clusters)
        verdict = pooled.loc[node]
        for c in ids:
            rows.at[c, "pool_clusters"] = ids
            rows.at[c, "pool_risky"] = bool(verdict["risky"])
            if verdict["risky"] and not rows.at[c, "risky"]:
                rows.at[c, "sibling_flag"] = True
                others = ", ".join(str(o) for o in ids if o != c)
                rows.at[c, "risk_reason"] = (
                    f"with its siblings (clusters {others}): {verdict['risk_reason']}"
                )
    rows["risky"] = rows["risky"] | rows["sibling_flag"]
    out = rows.reset_index()
    out.attrs = dict(risk.attrs)
    return out
