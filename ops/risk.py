"""Which clusters are risky, and why.

Two independent routes (FinDeepBehaviorCluster §risky clusters):

* **labels** — where confirmed fraud exists, a cluster is risky when the Wilson
  lower bound of its fraud rate clears a threshold. The lower bound, not the raw
  rate, so that 2 frauds out of 2 labelled do not outrank 90 out of 100.
* **coordination** — flash fraud arrives before labels do, so unlabelled
  clusters are scored on structure a ring leaves behind: near-identical
  behaviour, machine-like timing, shared devices/addresses, young accounts and
  bursts in time. Each signal is mapped to [0, 1] by a linear ramp whose ends are
  tunable in `CoordinationConfig`; the score is their weighted mean over the
  signals that could be computed.

Input everywhere is one row per transaction with at least ``cluster`` (-1 = noise),
``label`` (float, NaN = unlabelled) and ``ts``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import gammaln

NOISE = -1

SIGNALS = ("identical", "machine", "shared_ids", "young", "burst")


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
class CoordinationConfig:
    """Weights and ramps of the coordination signals.

    A ramp ``(zero_at, one_at)`` maps a raw measure linearly to [0, 1]; when
    ``zero_at > one_at`` smaller raw values are more suspicious. Defaults are
    judgement calls for e-commerce sessions (seconds, days), to be tuned on
    labelled windows.
    """

    weights: dict[str, float] = field(
        default_factory=lambda: {
            # clustering on behaviour already groups similar paths, so sameness
            # alone is weak evidence: it counts half
            "identical": 0.5,
            "machine": 1.0,
            # devices/addresses shared far beyond chance are the hardest trait to fake
            # away (device farms, drop addresses): on the synthetic shop this is what
            # lifts account takeover, which shows only two traits, over the threshold
            "shared_ids": 1.5,
            "young": 0.5,
            "burst": 1.0,
        }
    )
    path_share: tuple[float, float] = (0.5, 0.9)  # members on the modal event path
    dispersion_ratio: tuple[float, float] = (0.5, 0.1)  # cluster / global spread of embeddings
    median_dwell_s: tuple[float, float] = (2.0, 0.5)  # median seconds between events
    dwell_cv: tuple[float, float] = (0.8, 0.2)  # coefficient of variation of dwell
    # distinct ids a random sample of the cluster's size would show / distinct ids it has
    id_concentration: tuple[float, float] = (1.5, 5.0)
    young_days: float = 2.0
    young_share: tuple[float, float] = (0.3, 0.8)  # members with account age < young_days
    burst_span: tuple[float, float] = (0.3, 0.05)  # q10-q90 time span / whole window span
    strong: float = 0.5  # a signal at least this high counts as "strong"
    min_strong: int = 2  # one odd trait is not a ring
    score_threshold: float = 0.4
    min_size: int = 5


@dataclass(frozen=True)
class RiskConfig:
    """Everything `assess_risk` can be tuned with."""

    labels: LabelConfig = field(default_factory=LabelConfig)
    coordination: CoordinationConfig = field(default_factory=CoordinationConfig)


def ramp(x: float, zero_at: float, one_at: float) -> float:
    """Linear map of x to [0, 1]; NaN stays NaN."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return float("nan")
    return float(np.clip((x - zero_at) / (one_at - zero_at), 0.0, 1.0))


def _seconds(ts: pd.Series) -> np.ndarray:
    """Timestamps as float seconds; numeric input is taken as already comparable."""
    if pd.api.types.is_numeric_dtype(ts):
        return ts.to_numpy(dtype=np.float64)
    t = pd.to_datetime(ts, utc=True) if not pd.api.types.is_datetime64_any_dtype(ts) else ts
    if getattr(t.dt, "tz", None) is not None:
        t = t.dt.tz_convert("UTC").dt.tz_localize(None)
    return t.astype("datetime64[ns]").to_numpy().astype("int64") / 1e9


def _modal_share(values: pd.Series) -> tuple[float, object]:
    v = values.dropna()
    if v.empty:
        return float("nan"), None
    counts = v.value_counts()
    return float(counts.iloc[0] / len(v)), counts.index[0]


@dataclass(frozen=True)
class _IdPopulation:
    """How often each id value occurs in the whole window, as a histogram of counts.

    Repeat customers make any large cluster share devices, so sharing is judged
    against chance: the number of distinct values a random sample of the same size
    would show, E = sum_v 1 - C(N - c_v, n) / C(N, n) (drawing without replacement,
    exact also when the cluster is most of the window), summed per distinct count
    c so it costs O(#distinct counts), not O(#values).
    """

    n: int
    counts: np.ndarray  # distinct occurrence counts c
    multiplicity: np.ndarray  # how many values occur c times

    @classmethod
    def of(cls, values: pd.Series) -> _IdPopulation:
        vc = values.dropna().value_counts().to_numpy()
        c, m = np.unique(vc, return_counts=True)
        return cls(int(vc.sum()), c.astype(np.float64), m.astype(np.float64))

    def expected_distinct(self, n: int) -> float:
        if self.n == 0:
            return float("nan")
        N, c = float(self.n), self.counts
        n = min(float(n), N)
        rest = N - c - n  # values occurring more often than the sample leaves room for: p=0
        log_absent = np.where(
            rest >= 0,
            gammaln(N - c + 1)
            - gammaln(np.maximum(rest, 0) + 1)
            - gammaln(N + 1)
            + gammaln(N - n + 1),
            -np.inf,
        )
        return float(np.sum(self.multiplicity * -np.expm1(log_absent)))


def _combine(values: list[float], how: Callable[..., float]) -> float:
    """Combine sub-signals, ignoring the ones that could not be computed."""
    known = [v for v in values if not math.isnan(v)]
    return float(how(known)) if known else float("nan")


def _fmt_span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


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
        numeric). Optional: ``median_dwell`` (s), ``dwell_cv``, ``path`` (event path
        as one string), ``age_column`` (days), and the columns in ``id_columns``
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
    ``coordination_flag``, ``risky`` and ``risk_reason``.
    """
    cfg = config or RiskConfig()
    missing = {"cluster", "label", "ts"} - set(clusters.columns)
    if missing:
        raise ValueError(f"assess_risk needs columns {sorted(missing)}")
    df = clusters.reset_index(drop=True)
    label = pd.to_numeric(df["label"], errors="coerce")
    base_rate = float(label.mean()) if label.notna().any() else float("nan")
    t = _seconds(df["ts"])
    finite_t = t[np.isfinite(t)]
    window = float(finite_t.max() - finite_t.min()) if finite_t.size else float("nan")

    populations = {c: _IdPopulation.of(df[c]) for c in id_columns if c in df}
    disp = None
    if embeddings is not None:
        emb = np.asarray(embeddings, dtype=np.float64)
        if len(emb) != len(df):
            raise ValueError("embeddings must have one row per transaction")
        global_spread = float(np.linalg.norm(emb - emb.mean(0), axis=1).mean())
        disp = (emb, global_spread)

    rows = []
    for c, idx in df.groupby("cluster", sort=True).indices.items():
        g = df.iloc[idx]
        row = _label_stats(int(c), label.iloc[idx], base_rate, cfg.labels)
        row.update(
            _coordination_stats(
                g,
                t[idx],
                window,
                disp and (disp[0][idx], disp[1]),
                populations,
                age_column,
                cfg.coordination,
            )
        )
        if c == NOISE:
            row["label_flag"] = row["coordination_flag"] = False
        row["risky"] = bool(row["label_flag"] or row["coordination_flag"])
        row["risk_reason"] = _reason(row, cfg.coordination)
        rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs["base_rate"] = base_rate
    return out


def _label_stats(c: int, label: pd.Series, base_rate: float, cfg: LabelConfig) -> dict:
    n_lab = int(label.notna().sum())
    n_fraud = int((label == 1).sum())
    rate = n_fraud / n_lab if n_lab else float("nan")
    lower = float(wilson_lower_bound(n_fraud, n_lab, cfg.z))
    lift = rate / base_rate if n_lab and base_rate > 0 else float("nan")
    threshold = max(cfg.min_rate, cfg.min_lift * base_rate) if base_rate == base_rate else 1.0
    return {
        "cluster": c,
        "size": len(label),
        "n_labelled": n_lab,
        "n_fraud": n_fraud,
        "fraud_rate": rate,
        "lift": lift,
        "wilson_lower": lower,
        "label_flag": bool(n_lab >= cfg.min_labelled and lower >= threshold),
    }


def _coordination_stats(
    g: pd.DataFrame,
    t: np.ndarray,
    window: float,
    disp: tuple[np.ndarray, float] | None,
    populations: Mapping[str, _IdPopulation],
    age_column: str,
    cfg: CoordinationConfig,
) -> dict:
    nan = float("nan")
    r: dict[str, object] = {}
    path_share, modal = _modal_share(g["path"]) if "path" in g else (nan, None)
    r["path_share"], r["modal_path"] = path_share, modal
    if disp is not None and disp[1] > 0:
        emb = disp[0]
        r["dispersion_ratio"] = float(np.linalg.norm(emb - emb.mean(0), axis=1).mean() / disp[1])
    else:
        r["dispersion_ratio"] = nan
    r["median_dwell"] = float(g["median_dwell"].median()) if "median_dwell" in g else nan
    r["dwell_cv"] = float(g["dwell_cv"].median()) if "dwell_cv" in g else nan

    best_conc, best_col, per_id, n_ids = nan, None, nan, 0
    for col, pop in populations.items():
        v = g[col].dropna()
        if v.empty:
            continue
        observed = v.nunique()
        conc = pop.expected_distinct(len(v)) / observed
        if math.isnan(best_conc) or conc > best_conc:
            best_conc, best_col, per_id, n_ids = conc, col, len(v) / observed, observed
    r["id_concentration"], r["shared_id_column"] = best_conc, best_col
    r["members_per_id"], r["n_distinct_ids"] = per_id, n_ids

    if age_column in g:
        age = pd.to_numeric(g[age_column], errors="coerce").dropna()
        r["young_share"] = float((age < cfg.young_days).mean()) if len(age) else nan
    else:
        r["young_share"] = nan

    tt = t[np.isfinite(t)]
    if len(tt) >= 2 and window > 0:
        span = float(np.quantile(tt, 0.9) - np.quantile(tt, 0.1))
        r["burst_span"], r["burst_seconds"] = span / window, span
    else:
        r["burst_span"], r["burst_seconds"] = nan, nan

    # identical: the same path *or* a tight embedding cloud is enough
    r["sig_identical"] = _combine(
        [ramp(path_share, *cfg.path_share), ramp(r["dispersion_ratio"], *cfg.dispersion_ratio)],
        max,
    )
    # machine: a bot is fast *and* regular; either alone is a hurried or erratic human
    r["sig_machine"] = _combine(
        [ramp(r["median_dwell"], *cfg.median_dwell_s), ramp(r["dwell_cv"], *cfg.dwell_cv)], min
    )
    r["sig_shared_ids"] = ramp(best_conc, *cfg.id_concentration)
    r["sig_young"] = ramp(r["young_share"], *cfg.young_share)
    r["sig_burst"] = ramp(r["burst_span"], *cfg.burst_span)

    sigs = {s: r[f"sig_{s}"] for s in SIGNALS}
    avail = {s: v for s, v in sigs.items() if not math.isnan(v) and cfg.weights.get(s, 0) > 0}
    wsum = sum(cfg.weights[s] for s in avail)
    score = sum(cfg.weights[s] * v for s, v in avail.items()) / wsum if wsum else nan
    n_strong = sum(v >= cfg.strong for v in avail.values())
    r["coordination_score"] = score
    r["n_strong_signals"] = n_strong
    r["coordination_flag"] = bool(
        len(g) >= cfg.min_size
        and not math.isnan(score)
        and score >= cfg.score_threshold
        and n_strong >= cfg.min_strong
    )
    return r


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
