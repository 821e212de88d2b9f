"""Which transactions are flagged, and why: cluster, branch, membership, rule, neighbours.

A ring that HDBSCAN cuts into a risky cluster, a few noise points and a sibling cluster too
small or too unlabelled to be judged alone, or hides inside a large ordinary cluster, is
still one ring. Five reasons flag a transaction, tried in this order (the first that holds
is its ``flag_reason``):

* ``cluster``: it is a member of a risky cluster;
* ``branch``: it lies in a risky branch of the condensed tree under a non-risky cluster
  (`ops.risk.risky_branches`);
* ``membership``: it is noise or a member of a non-risky *sibling* of a risky cluster (same
  parent in the condensed tree), and its soft membership in the risky clusters (hdbscan's
  membership vectors, `risky_membership`) reaches a threshold calibrated on the labelled
  part of the window (`calibrate_membership`);
* ``rule``: a rule of a risky cluster, precise enough against its clusters (`rule_hits`),
  matches it, as the real-time engine's copy of the rule would;
* ``neighbours``: enough of its nearest neighbours in the hybrid space are flagged by the
  reasons above (or by this one, round after round), the share calibrated on the labelled
  part like the membership threshold (`ops.risk.neighbour_vote`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ops.constants import NOISE
from ops.risk._rules import Rule

FLAG_REASONS = ("cluster", "branch", "membership", "rule", "neighbours")


@dataclass(frozen=True)
class MembershipConfig:
    """How the membership threshold is chosen.

    The threshold is the lowest of ``grid`` at which the labelled candidates reaching it
    are fraud at a rate of at least ``min_precision``, counted over at least
    ``min_labelled`` of them; when the labels allow none, nothing is flagged by membership
    (an infinite threshold). Without ``min_labelled`` labelled candidates at all (a window
    with no labels yet) the threshold falls back to ``fallback``: 0.5, a point more likely
    in the risky clusters than in all other clusters together.
    """

    min_precision: float = 0.95
    min_labelled: int = 20
    fallback: float = 0.5
    #: fine steps: with many clusters a point's membership is spread thin over all of them,
    #: so the risky clusters' share of a ring's straggler may be a fifth, not a half
    grid: tuple[float, ...] = field(
        default_factory=lambda: tuple(round(0.02 * i, 2) for i in range(1, 50))
    )


@dataclass(frozen=True)
class MembershipCalibration:
    """The chosen threshold, whether labels chose it, and the precision-recall table."""

    threshold: float
    calibrated: bool
    table: pd.DataFrame

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict for ``summary.json`` (an infinite threshold is None)."""
        table = self.table.astype(object).where(self.table.notna(), None)
        return {
            "threshold": self.threshold if np.isfinite(self.threshold) else None,
            "calibrated": self.calibrated,
            "table": table.to_dict("records"),
        }


def risky_membership(vectors: np.ndarray, risky_clusters: Collection[int]) -> np.ndarray:
    """Each point's share of its soft membership that lies in the risky clusters.

    ``vectors`` is hdbscan's ``all_points_membership_vectors`` output, ``(n, n_clusters)``
    with column ``k`` for flat cluster ``k``. hdbscan scales a point's vector by its
    probability of being in any cluster, which is small for every noise point; so the
    memberships in the risky clusters are summed (a point between two risky siblings of one
    ring is inside the ring) and divided by the point's total: the probability that it
    belongs to the risky clusters *given* that it belongs to some cluster (0 when it has
    no membership at all).
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim == 1:  # hdbscan returns a vector when there is a single cluster
        vectors = vectors[:, None]
    columns = [c for c in sorted(risky_clusters) if 0 <= c < vectors.shape[1]]
    risky = vectors[:, columns].sum(axis=1)
    total = vectors.sum(axis=1)
    return np.divide(risky, total, out=np.zeros(len(vectors)), where=total > 0)


def membership_candidates(
    cluster: np.ndarray, risky_clusters: Collection[int], parent: Mapping[int, int]
) -> np.ndarray:
    """Noise, and members of non-risky clusters that share a parent with a risky cluster.

    ``parent`` maps flat clusters to their parent node in the condensed tree; only clusters
    under a parent small enough to be one ring are listed (`ops.risk.pool_siblings`'s ``parent``
    column), so a large cluster of ordinary traffic is never a ring's sibling.
    """
    cluster = np.asarray(cluster)
    risky = {int(c) for c in risky_clusters}
    risky_parents = {parent[c] for c in risky if c in parent}
    siblings = [c for c, p in parent.items() if p in risky_parents and c not in risky]
    return (cluster == NOISE) | np.isin(cluster, siblings)


def membership_table(
    score: np.ndarray, candidate: np.ndarray, label: np.ndarray, grid: Collection[float]
) -> pd.DataFrame:
    """Precision and recall of the membership flag over thresholds, on labelled candidates.

    Returns
    -------
    DataFrame
        One row per threshold: ``threshold``, ``n_flagged`` (candidates reaching it),
        ``n_labelled`` and ``n_fraud`` among them, ``precision`` (fraud share of the
        labelled flagged, NaN without any) and ``recall`` (share of the labelled fraud among
        candidates that is flagged).
    """
    label = np.asarray(label, dtype=np.float64)
    labelled = candidate & ~np.isnan(label)
    fraud = labelled & (label == 1)
    rows = []
    for t in grid:
        flagged = candidate & (score >= t)
        n_lab, n_fraud = int((flagged & labelled).sum()), int((flagged & fraud).sum())
        rows.append(
            {
                "threshold": float(t),
                "n_flagged": int(flagged.sum()),
                "n_labelled": n_lab,
                "n_fraud": n_fraud,
                "precision": n_fraud / n_lab if n_lab else np.nan,
                "recall": n_fraud / fraud.sum() if fraud.any() else np.nan,
            }
        )
    return pd.DataFrame(rows)


def calibrate_membership(
    score: np.ndarray,
    candidate: np.ndarray,
    label: np.ndarray,
    config: MembershipConfig | None = None,
) -> MembershipCalibration:
    """Pick the membership threshold on the labelled candidates (see `MembershipConfig`)."""
    cfg = config or MembershipConfig()
    table = membership_table(score, candidate, label, cfg.grid)
    n_labelled = int((candidate & ~np.isnan(np.asarray(label, dtype=np.float64))).sum())
    if n_labelled < cfg.min_labelled:
        return MembershipCalibration(cfg.fallback, False, table)
    good = table[
        (table["n_labelled"] >= cfg.min_labelled) & (table["precision"] >= cfg.min_precision)
    ]
    # labels enough to judge, and no threshold precise enough: membership flags nothing
    threshold = float(good["threshold"].min()) if len(good) else float("inf")
    return MembershipCalibration(threshold, True, table)


def rule_hits(
    rules: Iterable[Rule],
    frame: pd.DataFrame,
    cluster: np.ndarray,
    min_precision: float,
    label: np.ndarray | None = None,
    config: MembershipConfig | None = None,
) -> np.ndarray:
    """Transactions matched by a rule precise enough to flag what it matches.

    A rule's precision is recounted here without the noise it matches: HDBSCAN leaves part
    of a ring in noise, and those are the very transactions a rule should recover, so noise
    counts neither for nor against a rule; members of other clusters count against it.

    With ``label``, what a rule would flag beyond its own clusters is also judged by the
    labels, with the membership threshold's bar (``config``): when at least
    ``min_labelled`` of those transactions are labelled, at least ``min_precision`` of them
    must be fraud. A broad rule over hundreds of clusters can be precise against clusters
    and still reach thousands of ordinary noise points (0.33 fraud among 6,306 labelled at
    1M on the shop world); fewer labels than that leave the cluster bar alone to judge.
    """
    cfg = config or MembershipConfig()
    cluster = np.asarray(cluster)
    clustered = cluster != NOISE
    label = None if label is None else np.asarray(label, dtype=np.float64)
    hits = np.zeros(len(frame), dtype=bool)
    for rule in rules:
        matched = rule.mask(frame)
        own = np.isin(cluster, rule.clusters)
        judged = int((matched & clustered).sum())
        inside = int((matched & own).sum())
        if not judged or inside / judged < min_precision:
            continue
        if label is not None:
            beyond = label[matched & ~own]
            n_labelled = int((~np.isnan(beyond)).sum())
            n_fraud = int((beyond == 1).sum())
            if n_labelled >= cfg.min_labelled and n_fraud < cfg.min_precision * n_labelled:
                continue
        hits |= matched
    return hits


def flag_transactions(
    cluster: np.ndarray,
    risky_clusters: Collection[int],
    *,
    branch: np.ndarray | None = None,
    membership: np.ndarray | None = None,
    rule_hits: np.ndarray | None = None,
    neighbours: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``risky`` (bool) and ``flag_reason`` (one of `FLAG_REASONS` or None) per transaction.

    ``branch`` marks transactions in a risky branch, ``membership`` candidates whose soft
    membership reached the threshold, ``rule_hits`` transactions a flagging rule matches,
    ``neighbours`` those the neighbour vote flagged; any may be absent.
    """
    cluster = np.asarray(cluster)
    reason = np.full(len(cluster), None, dtype=object)
    reasons = [("cluster", np.isin(cluster, list(risky_clusters)))]
    if branch is not None:
        reasons.append(("branch", np.asarray(branch, dtype=bool)))
    if membership is not None:
        reasons.append(("membership", np.asarray(membership, dtype=bool)))
    if rule_hits is not None:
        reasons.append(("rule", np.asarray(rule_hits, dtype=bool)))
    if neighbours is not None:
        reasons.append(("neighbours", np.asarray(neighbours, dtype=bool)))
    for name, hit in reversed(reasons):  # the earliest reason wins
        reason[hit] = name
    return pd.notna(reason), reason
