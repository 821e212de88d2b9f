"""Which clusters are risky, and why.

Two independent routes (FinDeepBehaviorCluster §risky clusters):

* **labels** — where confirmed fraud exists, a cluster is risky when the Wilson
  lower bound of its fraud rate clears a threshold. The lower bound, not the raw
  rate, so that 2 frauds out of 2 labelled do not outrank 90 out of 100.
* **coordination** — flash fraud arrives before labels do, so unlabelled
  clusters are scored on structure a ring leaves behind (`ops.risk._coordination`).

Input everywhere is one row per transaction with at least ``cluster`` (-1 = noise),
``label`` (float, NaN = unlabelled) and ``ts``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ops.constants import NOISE
from ops.risk._coordination import CoordinationConfig, _coordination_table, _fmt_span, ramp


def wilson_lower_bound(k: float | np.ndarray, n: float | np.ndarray, z: float = 1.96) -> np.ndarray:
    """Lower end of the Wilson score interval for k successes in n trials (0 where n == 0)."""
    k_arr = np.asarray(k, dtype=np.float64)
    n_arr = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k_arr / n_arr
        z2 = z * z
        centre = p + z2 / (2 * n_arr)
        margin = z * np.sqrt(p * (1 - p) / n_arr + z2 / (4 * n_arr * n_arr))
        lb = (centre - margin) / (1 + z2 / n_arr)
    out = np.where(n_arr > 0, np.clip(lb, 0.0, 1.0), 0.0)
    return out if out.ndim else out[()]


@dataclass(frozen=True)
class LabelConfig:
    """When labels alone make a cluster risky.

    Flagged when ``n_labelled >= min_labelled`` and the Wilson lower bound of the
    fraud rate is at least ``max(min_rate, min_lift * base_rate)``: the absolute
    floor keeps tiny base rates from flagging everything, the lift term keeps a
    high base rate from doing the same.
    """

    min_labelled: int = 5
    min_rate: float = 0.2
    min_lift: float = 3.0
    z: float = 1.96


@dataclass(frozen=True)
class RiskConfig:
    """Everything `assess_risk` can be tuned with."""

    labels: LabelConfig = field(default_factory=LabelConfig)
    coordination: CoordinationConfig = field(default_factory=CoordinationConfig)


def assess_risk(
    clusters: pd.DataFrame,
    *,
    id_columns: Sequence[str] = (),
    embeddings: np.ndarray | None = None,
    age_column: str = "account_age_days",
    config: RiskConfig | None = None,
) -> pd.DataFrame:
    """Score every cluster on labels and on coordination.

    Parameters
    ----------
    clusters : one row per transaction. Required: ``cluster`` (int, -1 noise),
        ``label`` (float 0/1, NaN unlabelled), ``ts`` (datetime, ISO string or
        numeric). Optional: ``median_dwell`` (s), ``dwell_cv``, ``path`` (list of
        page names), ``age_column`` (days), and the columns in ``id_columns``
        (device_id, ip, shipping address…).
    embeddings : optional sequence embeddings aligned with the rows, for the
        dispersion part of the "identical behaviour" signal.
    config : thresholds and weights; defaults documented on the dataclasses.

    Returns
    -------
    DataFrame, one row per cluster (noise included as ``cluster == -1`` but never
    flagged: noise is not a group), sorted by cluster id, with ``cluster``, ``size``,
    ``n_labelled``, ``n_fraud``, ``fraud_rate``, ``lift``, ``wilson_lower``,
    ``label_flag``; raw measures ``path_share``, ``modal_path``, ``dispersion_ratio``,
    ``median_dwell``, ``dwell_cv``, ``id_concentration`` (distinct ids expected by
    chance / distinct ids seen, for the most concentrated of ``id_columns``),
    ``shared_id_column``, ``members_per_id``, ``n_distinct_ids``, ``young_share``,
    ``burst_span``, ``burst_seconds``; signals
    ``sig_identical``, ``sig_machine``, ``sig_shared_ids``, ``sig_young``,
    ``sig_burst`` (each in [0, 1] or NaN), ``coordination_score``,
    ``n_strong_signals``, ``coordination_flag``, ``risky`` and ``risk_reason``.
    ``df.attrs["base_rate"]`` holds the fraud rate over all labelled rows.
    """
    cfg = config or RiskConfig()
    missing = {"cluster", "label", "ts"} - set(clusters.columns)
    if missing:
        raise ValueError(f"assess_risk needs columns {sorted(missing)}")
    # Vectorised group-bys, not a loop over clusters: a million rows in thousands of clusters
    # (figures in benchmarks/README.md, "Figures behind the code's choices").
    df = clusters.reset_index(drop=True)
    key = df["cluster"].to_numpy()
    label = pd.to_numeric(df["label"], errors="coerce")
    base_rate = float(label.mean()) if label.notna().any() else float("nan")
    out = _label_table(key, label, base_rate, cfg.labels)
    coord = _coordination_table(df, key, embeddings, id_columns, age_column, cfg.coordination)
    out = out.join(coord)
    noise = out.index == NOISE
    out.loc[noise, ["label_flag", "coordination_flag"]] = False
    out["risky"] = out["label_flag"] | out["coordination_flag"]
    out = out.reset_index()
    out["risk_reason"] = [_reason(row, cfg.coordination) for row in out.to_dict("records")]
    out.attrs["base_rate"] = base_rate
    return out


def _label_table(
    key: np.ndarray, label: pd.Series, base_rate: float, cfg: LabelConfig
) -> pd.DataFrame:
    g = pd.DataFrame({"cluster": key, "lab": label.notna(), "fraud": label == 1})
    t = g.groupby("cluster").agg(
        size=("lab", "size"), n_labelled=("lab", "sum"), n_fraud=("fraud", "sum")
    )
    t = t.astype({"size": int, "n_labelled": int, "n_fraud": int})
    n_lab = t["n_labelled"].to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        t["fraud_rate"] = np.where(n_lab > 0, t["n_fraud"] / n_lab, np.nan)
        t["lift"] = t["fraud_rate"] / base_rate if base_rate > 0 else np.nan
    t["wilson_lower"] = wilson_lower_bound(t["n_fraud"].to_numpy(), n_lab, cfg.z)
    threshold = label_threshold(base_rate, cfg)
    t["label_flag"] = (t["n_labelled"] >= cfg.min_labelled) & (t["wilson_lower"] >= threshold)
    return t


def label_threshold(base_rate: float, cfg: LabelConfig) -> float:
    """The fraud rate a Wilson bound is held against; 1 (never) when nothing is labelled."""
    return max(cfg.min_rate, cfg.min_lift * base_rate) if base_rate == base_rate else 1.0


def _reason(row: dict, cfg: CoordinationConfig) -> str:
    """Short analyst-facing justification; empty for clusters not flagged."""
    parts = []
    if row["label_flag"]:
        parts.append(
            f"labels: {row['n_fraud']}/{row['n_labelled']} labelled are fraud "
            f"({row['fraud_rate']:.0%}, lower bound {row['wilson_lower']:.0%}"
            + (f", {row['lift']:.1f}x base rate)" if row["lift"] == row["lift"] else ")")
        )
    if row["coordination_flag"]:
        bits = []
        if row["sig_identical"] >= cfg.strong:
            if ramp(row["path_share"], *cfg.path_share) >= cfg.strong:
                bits.append(f"{row['path_share']:.0%} follow the same event path")
            else:
                bits.append(
                    "near-identical behaviour "
                    f"(spread {row['dispersion_ratio']:.2f}x of all traffic)"
                )
        if row["sig_machine"] >= cfg.strong:
            bits.append(
                f"machine-like timing (median {row['median_dwell']:.2g} s between events"
                + (
                    f", dwell CV {row['dwell_cv']:.2f})"
                    if row["dwell_cv"] == row["dwell_cv"]
                    else ")"
                )
            )
        if row["sig_shared_ids"] >= cfg.strong:
            bits.append(
                f"{row['size']:,} transactions on {row['n_distinct_ids']:,} "
                f"{row['shared_id_column']} values "
                f"({row['id_concentration']:.0f}x fewer than chance)"
            )
        if row["sig_young"] >= cfg.strong:
            bits.append(f"{row['young_share']:.0%} accounts younger than {cfg.young_days:g} days")
        if row["sig_burst"] >= cfg.strong:
            bits.append(f"80% within {_fmt_span(row['burst_seconds'])}")
        parts.append(f"coordination {row['coordination_score']:.2f}: " + ", ".join(bits))
    return "; ".join(parts)
