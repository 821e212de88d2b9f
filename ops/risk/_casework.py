"""What investigators act on once clusters are judged: missed fraud and the review queue.

The product's value metric is fraud the real-time engine approved that sits in a risky cluster;
the queue is what nobody has labelled yet in those clusters.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd


def _risky_ids(risky_clusters: Iterable[int] | pd.DataFrame) -> set[int]:
    if isinstance(risky_clusters, pd.DataFrame):
        return set(risky_clusters.loc[risky_clusters["risky"], "cluster"].astype(int))
    return {int(c) for c in risky_clusters}


def _attach_reason(out: pd.DataFrame, risky_clusters: Iterable[int] | pd.DataFrame) -> pd.DataFrame:
    if isinstance(risky_clusters, pd.DataFrame) and "risk_reason" in risky_clusters:
        info = risky_clusters.set_index("cluster")[["risk_reason"]]
        out = out.join(info, on="cluster")
    return out


def missed_fraud(df: pd.DataFrame, risky_clusters: Iterable[int] | pd.DataFrame) -> pd.DataFrame:
    """Confirmed fraud the real-time engine approved that sits in a risky cluster.

    This is the product's value metric: what clustering would have caught that
    the engine let through. ``df`` needs ``cluster``, ``label`` and ``decision``
    (case-insensitive ``"approved"``); ``amount`` is kept when present.
    ``risky_clusters`` is a collection of ids or `assess_risk`'s output (then
    ``risk_reason`` is attached). Sorted by amount, largest first.
    """
    ids = _risky_ids(risky_clusters)
    if "decision" not in df:
        raise ValueError("missed_fraud needs a 'decision' column")
    decision = df["decision"].astype("string").str.lower().str.strip()
    mask = (
        (pd.to_numeric(df["label"], errors="coerce") == 1)
        & (decision == "approved").fillna(False).astype(bool)
        & df["cluster"].isin(ids)
    )
    out = df.loc[mask].copy()
    if "amount" in out:
        out = out.sort_values("amount", ascending=False, kind="stable")
    return _attach_reason(out.reset_index(drop=True), risky_clusters)


def missed_fraud_summary(missed: pd.DataFrame) -> pd.DataFrame:
    """Per risky cluster: how many missed frauds and how much money."""
    agg = {"n_missed": ("cluster", "size")}
    if "amount" in missed:
        agg["amount_missed"] = ("amount", "sum")
    return missed.groupby("cluster").agg(**agg).reset_index()


def review_list(df: pd.DataFrame, risky_clusters: Iterable[int] | pd.DataFrame) -> pd.DataFrame:
    """Unlabelled transactions in risky clusters: the investigators' queue.

    Ordered by cluster then time so one case is one contiguous block; with
    `assess_risk`'s output as ``risky_clusters`` each row carries its reason.
    """
    ids = _risky_ids(risky_clusters)
    mask = pd.to_numeric(df["label"], errors="coerce").isna() & df["cluster"].isin(ids)
    out = df.loc[mask].copy()
    keys = ["cluster", "ts"] if "ts" in out else ["cluster"]
    out = out.sort_values(keys, kind="stable").reset_index(drop=True)
    return _attach_reason(out, risky_clusters)
