"""Explain: rules and a narrative for each risky cluster; the final per-transaction outputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
from prefect import get_run_logger, task
from pydantic import BaseModel, Field

from catalog.datasets import Catalog
from infra.memory import STAGE_HOOKS
from infra.tracking import RunLogger
from ops.features import DWELL_FIT_COLUMNS, FeatureSpec
from ops.phdbscan import all_points_membership_vectors, training_neighbours
from ops.risk import (
    BEHAVIOUR_COLUMNS,
    FLAG_REASONS,
    RULE_SOURCE_SQL,
    MembershipCalibration,
    MembershipConfig,
    NeighbourConfig,
    NeighbourVote,
    Rule,
    calibrate_membership,
    describe_behaviour,
    engine_forms,
    extract_all_rules,
    flag_transactions,
    membership_candidates,
    missed_fraud,
    narrate,
    neighbour_vote,
    review_list,
    risky_membership,
    rule_hits,
)
from tasks.io import log_dataset
from tasks.risk import load_clusterer, transactions_view

#: Membership candidates whose vectors (rows x clusters, float64) are held at once.
_VECTOR_ROWS = 16_384
CLUSTER_COLUMNS = ["txn_id", "cluster", "probability", "outlier_score", "risky", "flag_reason"]
#: Session statistics (`ops.features.session_stats`) an engine can compute from the live
#: session at decision time (the dwell fit with the window's table of typical page dwell);
#: a ring that differs only in its timing has no other trait.
SESSION_COLUMNS = ["median_dwell", "dwell_cv", "duration", "n_events", *DWELL_FIT_COLUMNS]


class ExplainParams(BaseModel):
    """How rules are grown and kept for each risky cluster, and which transactions are flagged."""

    max_depth: int = Field(4, ge=1, le=6, description="conditions per rule at most")
    max_rules: int = Field(3, ge=1, description="rules kept per risky cluster")
    min_precision: float = Field(0.5, ge=0, le=1, description="weaker rules are dropped")
    group: bool = Field(True, description="one set of rules for risky clusters alike")
    min_cover: float = Field(
        0.6, gt=0.5, le=1, description="share of a cluster inside another's rules to group them"
    )
    session_features: bool = Field(True, description="rules may use session statistics")
    flag_rule_precision: float = Field(
        0.8, ge=0, le=1, description="rules this precise (noise aside) flag what they match"
    )
    membership_precision: float = Field(
        0.95, ge=0, le=1, description="labelled precision the membership threshold must reach"
    )
    neighbour_k: int = Field(30, ge=1, description="nearest neighbours in the neighbour vote")


@task(name="explain", **STAGE_HOOKS)
def explain(output_root: str, params: ExplainParams, run_id: str) -> dict[str, int]:
    """Explain each risky cluster with rules and a narrative; write the flagged transactions.

    Returns
    -------
    dict
        Counts logged to the run (risky clusters, rules, flags per reason, review rows).
    """
    catalog = Catalog(output_root)
    # paths stay Arrow lists: only the risky clusters' members and the flagged rows read them
    view = transactions_view(catalog, arrow_lists=True)
    risk = catalog.load_frame("risk")
    risky_ids = [int(c) for c in risk.loc[risk["risky"], "cluster"]]
    spec = FeatureSpec.from_dict(catalog.load_json("feature_spec"))
    # Rules read raw intuitive features (thresholds a person and an engine understand),
    # never ids whose values mean nothing outside this window.
    rule_columns = [c.name for c in spec.columns if c.kind != "frequency"]
    if params.session_features:
        rule_columns += [c for c in SESSION_COLUMNS if c in view and c not in rule_columns]
    rules = extract_all_rules(
        view[rule_columns],
        view["cluster"].to_numpy(),
        risky_ids,
        group=params.group,
        min_cover=params.min_cover,
        max_depth=params.max_depth,
        max_rules=params.max_rules,
        min_precision=params.min_precision,
    )
    # one pass over the rows for every cluster's members, not one mask per risky cluster
    # (hundreds of them over a million rows at scale), and only the columns it reads
    rows_of = view.groupby("cluster", sort=False).indices
    sessions = view[[c for c in BEHAVIOUR_COLUMNS if c in view]]
    summaries = risk.set_index("cluster", drop=False)
    narratives = {
        c: narrate(summaries.loc[c], rules[c], describe_behaviour(sessions.iloc[rows_of[c]]))
        for c in risky_ids
    }

    flags, calibration, vote = flag_view(view, risk, risky_ids, rules, catalog, params)
    view["risky"], view["flag_reason"] = flags
    summary = risk.assign(
        rule_text=risk["cluster"].map(
            lambda c: " OR ".join(f"({r.describe()})" for r in rules.get(int(c), []))
        ),
        narrative=risk["cluster"].map(lambda c: narratives.get(int(c), "")),
    )
    rules_doc = {
        # what an engine loads: each rule once, with the clusters it stands for, and as a
        # SQL predicate over `sql_from` and as JSON Logic (`ops.risk.engine_forms`)
        "sql_from": RULE_SOURCE_SQL,
        "rules": [{**r.to_dict(), **engine_forms(r)} for r in _distinct(rules)],
        "clusters": [
            {
                "cluster": c,
                "risk_reason": str(risk.loc[risk["cluster"] == c, "risk_reason"].iloc[0]),
                "narrative": narratives[c],
                "rules": [r.to_dict() for r in rules[c]],
            }
            for c in risky_ids
        ],
    }
    has_decision = "decision" in view
    missed = missed_fraud(view, risk) if has_decision else view.iloc[:0]
    review = review_list(view, risk)
    catalog.save_table("clusters", view[CLUSTER_COLUMNS])
    catalog.save_table("clusters_summary", _parquet_safe(summary))
    catalog.save_json("rules", rules_doc)
    catalog.save_json("flags", flag_summary(view["flag_reason"], calibration, vote))
    catalog.save_table("missed", _parquet_safe(missed))
    catalog.save_table("review", _parquet_safe(review))

    tracker = RunLogger(run_id)
    tracker.params(params.model_dump(), prefix="explain.")
    tracker.metrics(
        {
            "explain.n_rules": len(rules_doc["rules"]),
            "explain.n_rule_groups": len({r.clusters for r in _distinct(rules)}),
            "explain.missed_fraud": len(missed),
            "explain.missed_fraud_amount": float(missed["amount"].sum()) if len(missed) else 0.0,
            "explain.review_list": len(review),
        }
    )
    for name in ("clusters", "clusters_summary", "rules"):
        log_dataset(tracker, catalog, name, "outputs")
    get_run_logger().info(
        "%d rules for %d risky clusters; %d missed frauds; %d transactions to review",
        len(rules_doc["rules"]),
        len(risky_ids),
        len(missed),
        len(review),
    )
    return {"risky_clusters": len(risky_ids), "missed_fraud": len(missed), "review": len(review)}


def flag_view(
    view: pd.DataFrame,
    risk: pd.DataFrame,
    risky_ids: list[int],
    rules: dict[int, list[Rule]],
    catalog: Catalog,
    params: ExplainParams,
) -> tuple[tuple[np.ndarray, np.ndarray], MembershipCalibration, NeighbourVote]:
    """``(risky, flag_reason)`` per transaction of ``view``, the membership calibration, the vote.

    ``risk`` is the evaluate stage's table (`ops.risk.pool_siblings`): its
    ``parent`` column says which clusters are siblings; its ``branches`` table
    (`ops.risk.risky_branches`) the transactions in risky branches of the others.
    """
    cluster = view["cluster"].to_numpy()
    label = pd.to_numeric(view["label"], errors="coerce").to_numpy(dtype=np.float64)
    config = MembershipConfig(min_precision=params.membership_precision)
    hits = rule_hits(_distinct(rules), view, cluster, params.flag_rule_precision, label, config)
    parent = risk.loc[risk["parent"] >= 0].set_index("cluster")["parent"]
    candidate = membership_candidates(cluster, risky_ids, parent.to_dict())
    # only candidates can be flagged by membership, so only their vectors are computed
    rows = np.flatnonzero(candidate)
    clusterer = load_clusterer(catalog)
    score = np.zeros(len(cluster))
    # a vector spans every cluster: 171k candidates x 1,243 clusters at 3M, so by blocks
    for start in range(0, len(rows), _VECTOR_ROWS):
        block = rows[start : start + _VECTOR_ROWS]
        score[block] = risky_membership(all_points_membership_vectors(clusterer, block), risky_ids)
    calibration = calibrate_membership(score, candidate, label, config)
    membership = candidate & (score >= calibration.threshold)
    branch = view["txn_id"].isin(catalog.load_frame("branches", ["txn_id"])["txn_id"]).to_numpy()
    flagged, _ = flag_transactions(
        cluster, risky_ids, branch=branch, membership=membership, rule_hits=hits
    )
    vote = neighbour_vote(
        flagged,
        clusterer.minimum_spanning_tree_.to_numpy(),
        lambda at, k: training_neighbours(clusterer, at, k),
        label,
        NeighbourConfig(k=params.neighbour_k, calibration=config),
    )
    flags = flag_transactions(
        cluster,
        risky_ids,
        branch=branch,
        membership=membership,
        rule_hits=hits,
        neighbours=vote.flagged,
    )
    return flags, calibration, vote


def flag_summary(
    reason: pd.Series, calibration: MembershipCalibration, vote: NeighbourVote
) -> dict[str, object]:
    """Per-reason counts; the membership and neighbour thresholds' precision-recall tables."""
    counts = reason.fillna("none").value_counts()
    return {
        "counts": {r: int(counts.get(r, 0)) for r in (*FLAG_REASONS, "none")},
        "membership": calibration.to_dict(),
        "neighbours": vote.to_dict(),
    }


def _distinct(rules: dict[int, list[Rule]]) -> list[Rule]:
    """Every rule once: a group's rules are listed under each of its clusters."""
    return list(dict.fromkeys(r for rs in rules.values() for r in rs))


def _parquet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns made storable: sequences as Parquet lists, mixed values as JSON text.

    Paths (page names, any character) and pooled cluster ids stay lists end to end; they
    arrive as lists or, read back from Parquet, as arrays, whose text form NumPy abridges.
    """
    out = frame.copy()
    for name in out.columns:
        if isinstance(out[name].dtype, pd.ArrowDtype) and pa.types.is_nested(
            out[name].dtype.pyarrow_dtype
        ):
            out[name] = out[name].astype(object)  # Arrow lists, as Python lists
        if out[name].dtype != object:
            continue
        values = out[name]
        if values.map(lambda v: _missing(v) or isinstance(v, _SEQUENCES)).all():
            out[name] = values.map(lambda v: None if _missing(v) else _plain(v))
        else:
            out[name] = values.map(_json_text)
    return out


_SEQUENCES = (list, tuple, np.ndarray)


def _missing(value: object) -> bool:
    """None or a float NaN, which pandas puts in object columns for a missing value."""
    return value is None or (isinstance(value, float) and value != value)


def _json_text(value: object) -> str | None:
    """Text as it is, anything else as JSON text; missing as None."""
    if _missing(value):
        return None
    return value if isinstance(value, str) else json.dumps(_plain(value), default=str)


def _plain(value: object) -> object:
    """``value`` with arrays, tuples and NumPy scalars as the Python values JSON knows."""
    if isinstance(value, _SEQUENCES):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value
