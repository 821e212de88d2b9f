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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.special import gammaln

from ops.constants import NOISE
from ops.features import path_keys

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


def ramp(x: float | np.ndarray, zero_at: float, one_at: float) -> np.ndarray:
    """Linear map of x to [0, 1]; NaN stays NaN."""
    with np.errstate(invalid="ignore"):
        out = np.clip((np.asarray(x, dtype=np.float64) - zero_at) / (one_at - zero_at), 0.0, 1.0)
    return out if out.ndim else out[()]


def to_utc(ts: pd.Series) -> pd.Series:
    """Parse ISO-8601 strings (mixed offsets and precisions allowed) to UTC timestamps."""
    return pd.to_datetime(ts, utc=True, format="ISO8601")


def _seconds(ts: pd.Series) -> np.ndarray:
    """Timestamps as float seconds; numeric input is taken as already comparable."""
    if pd.api.types.is_numeric_dtype(ts):
        return ts.to_numpy(dtype=np.float64)
    t = ts if pd.api.types.is_datetime64_any_dtype(ts) else to_utc(ts)
    if getattr(t.dt, "tz", None) is not None:
        t = t.dt.tz_convert("UTC").dt.tz_localize(None)
    return t.astype("datetime64[ns]").to_numpy().astype("int64") / 1e9


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


def _coordination_table(
    df: pd.DataFrame,
    key: np.ndarray,
    embeddings: np.ndarray | None,
    id_columns: Sequence[str],
    age_column: str,
    cfg: CoordinationConfig,
) -> pd.DataFrame:
    """Per cluster: what its members share, the five signals, the score and the flag.

    Each measure is one step that reads the members and returns its own columns; the
    signals, the score and the flag are then computed from the measures alone.
    """
    clusters = pd.Index(np.unique(key), name="cluster")
    by = pd.Series(key, name="cluster")
    measures = pd.concat(
        [
            _path_agreement(df, key, clusters),
            _embedding_spread(df, key, embeddings, clusters),
            _session_pace(df, by, clusters),
            _shared_ids(df, key, id_columns, clusters),
            _young_accounts(df, by, age_column, cfg.young_days, clusters),
            _time_burst(df, by, clusters),
        ],
        axis=1,
    )
    signals = _coordination_signals(measures, cfg)
    verdict = _coordination_verdict(signals, by.value_counts().reindex(clusters), cfg)
    return pd.concat([measures, signals, verdict], axis=1)


def _path_agreement(df: pd.DataFrame, key: np.ndarray, clusters: pd.Index) -> pd.DataFrame:
    """``path_share``: the share of members on the cluster's most common path; ``modal_path``."""
    t = pd.DataFrame(index=clusters)
    if "path" not in df:
        t["path_share"], t["modal_path"] = np.nan, None
        return t
    # lists of page names, counted as tuples: names may hold any character
    codes, uniques = pd.factorize(pd.Series(path_keys(df["path"]), dtype=object))  # None -> -1
    known = codes >= 0
    pairs = pd.DataFrame({"cluster": key[known], "code": codes[known]})
    counts = pairs.groupby(["cluster", "code"]).size().sort_values(ascending=False)
    top = counts[~counts.index.get_level_values("cluster").duplicated()]
    top = top.droplevel("code").rename("top")
    top_code = pd.Series(
        counts.index.get_level_values("code")[
            ~counts.index.get_level_values("cluster").duplicated()
        ],
        index=top.index,
    )
    n_known = pairs.groupby("cluster").size()
    t["path_share"] = (top / n_known).reindex(t.index)
    t["modal_path"] = top_code.map(lambda c: list(uniques[c])).reindex(t.index)
    return t


def _embedding_spread(
    df: pd.DataFrame, key: np.ndarray, embeddings: np.ndarray | None, clusters: pd.Index
) -> pd.DataFrame:
    """``dispersion_ratio``: how tight each cluster's embedding cloud is (NaN without one)."""
    t = pd.DataFrame(index=clusters)
    t["dispersion_ratio"] = np.nan
    if embeddings is not None:
        if len(embeddings) != len(df):
            raise ValueError("embeddings must have one row per transaction")
        t["dispersion_ratio"] = _dispersion_ratio(np.asarray(embeddings), key, t.index.to_numpy())
    return t


def _session_pace(df: pd.DataFrame, by: pd.Series, clusters: pd.Index) -> pd.DataFrame:
    """``median_dwell`` and ``dwell_cv``: the members' median pace and its regularity."""
    t = pd.DataFrame(index=clusters)
    for col in ("median_dwell", "dwell_cv"):
        t[col] = (
            pd.to_numeric(df[col], errors="coerce").groupby(by).median() if col in df else np.nan
        )
    return t


def _shared_ids(
    df: pd.DataFrame, key: np.ndarray, id_columns: Sequence[str], clusters: pd.Index
) -> pd.DataFrame:
    """The id column whose values the members share most, against chance.

    ``id_concentration`` is the number of distinct values a random sample of the cluster's
    size would hold over the number the members hold; the most concentrated column wins.
    """
    t = pd.DataFrame(index=clusters)
    t["id_concentration"], t["shared_id_column"] = np.nan, None
    t["members_per_id"], t["n_distinct_ids"] = np.nan, 0
    for col in id_columns:
        if col not in df:
            continue
        pop = _IdPopulation.of(df[col])
        present = df[col].notna().to_numpy()
        g = pd.DataFrame({"cluster": key[present], "v": df[col].to_numpy()[present]})
        stats = g.groupby("cluster")["v"].agg(["size", "nunique"]).reindex(t.index)
        expected = np.array([pop.expected_distinct(int(n)) if n == n else np.nan
                             for n in stats["size"]])  # fmt: skip
        with np.errstate(divide="ignore", invalid="ignore"):
            conc = expected / stats["nunique"].to_numpy(dtype=np.float64)
        better = np.isfinite(conc) & ~(conc <= t["id_concentration"].fillna(-np.inf).to_numpy())
        t.loc[better, "id_concentration"] = conc[better]
        t.loc[better, "shared_id_column"] = col
        t.loc[better, "members_per_id"] = (stats["size"] / stats["nunique"])[better]
        t.loc[better, "n_distinct_ids"] = stats["nunique"][better]
    t["n_distinct_ids"] = t["n_distinct_ids"].astype(int)
    return t


def _young_accounts(
    df: pd.DataFrame, by: pd.Series, age_column: str, young_days: float, clusters: pd.Index
) -> pd.DataFrame:
    """``young_share``: the share of members whose account is younger than ``young_days``."""
    t = pd.DataFrame(index=clusters)
    if age_column in df:
        age = pd.to_numeric(df[age_column], errors="coerce")
        young = (age < young_days).where(age.notna())
        t["young_share"] = young.astype(float).groupby(by).mean()
    else:
        t["young_share"] = np.nan
    return t


def _time_burst(df: pd.DataFrame, by: pd.Series, clusters: pd.Index) -> pd.DataFrame:
    """``burst_seconds``: the members' 10-90% time span; ``burst_span``: its window share."""
    t = pd.DataFrame(index=clusters)
    ts = pd.Series(_seconds(df["ts"]))
    ts = ts.where(np.isfinite(ts))
    window = float(ts.max() - ts.min()) if ts.notna().any() else np.nan
    lo, hi = ts.groupby(by).quantile(0.1), ts.groupby(by).quantile(0.9)
    span = (hi - lo).where(ts.groupby(by).count() >= 2)
    t["burst_seconds"] = span
    t["burst_span"] = span / window if window > 0 else np.nan
    return t


def _coordination_signals(measures: pd.DataFrame, cfg: CoordinationConfig) -> pd.DataFrame:
    """The five signals in [0, 1] (NaN where unmeasured), each a ramp over its measures."""
    t = pd.DataFrame(index=measures.index)

    def ramped(column: str, bounds: tuple[float, float]) -> np.ndarray:
        return ramp(measures[column].to_numpy(dtype=float), *bounds)

    # identical: the same path *or* a tight embedding cloud is enough
    same = ramped("path_share", cfg.path_share)
    tight = ramped("dispersion_ratio", cfg.dispersion_ratio)
    t["sig_identical"] = _nan_reduce(np.fmax, same, tight)
    # machine: a bot is fast *and* regular; either alone is a hurried or erratic human
    fast = ramped("median_dwell", cfg.median_dwell_s)
    regular = ramped("dwell_cv", cfg.dwell_cv)
    t["sig_machine"] = _nan_reduce(np.fmin, fast, regular)
    t["sig_shared_ids"] = ramped("id_concentration", cfg.id_concentration)
    t["sig_young"] = ramped("young_share", cfg.young_share)
    t["sig_burst"] = ramped("burst_span", cfg.burst_span)
    return t


def _coordination_verdict(
    signals: pd.DataFrame, sizes: pd.Series, cfg: CoordinationConfig
) -> pd.DataFrame:
    """The weighted mean of the available signals, how many are strong, and the flag."""
    t = pd.DataFrame(index=signals.index)
    sig = np.column_stack([signals[f"sig_{s}"].to_numpy(dtype=float) for s in SIGNALS])
    w = np.array([cfg.weights.get(s, 0.0) for s in SIGNALS])
    avail = ~np.isnan(sig) & (w > 0)
    wsum = (avail * w).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        t["coordination_score"] = np.where(
            wsum > 0, (np.where(avail, sig, 0) * w).sum(axis=1) / wsum, np.nan
        )
    t["n_strong_signals"] = (avail & (np.nan_to_num(sig) >= cfg.strong)).sum(axis=1)
    t["coordination_flag"] = (
        (sizes >= cfg.min_size)
        & (t["coordination_score"] >= cfg.score_threshold)
        & (t["n_strong_signals"] >= cfg.min_strong)
    )
    return t


def _dispersion_ratio(
    emb: np.ndarray, key: np.ndarray, ids: np.ndarray, chunk: int = 65_536
) -> np.ndarray:
    """Mean distance to the own centroid per cluster / mean distance to the global centroid.

    Sums by a sparse indicator product and distances in chunks, so a 1M x 128
    float32 embedding never gets a float64 copy (1 GB) or an n x d temporary.
    """
    n = len(emb)
    codes = np.searchsorted(ids, key)
    k = len(ids)
    indicator = sparse.csr_matrix((np.ones(n), (codes, np.arange(n))), shape=(k, n))
    sums = np.asarray(indicator @ emb, dtype=np.float64)
    counts = np.bincount(codes, minlength=k).astype(np.float64)
    centroids = sums / np.maximum(counts, 1)[:, None]
    centre = sums.sum(axis=0) / max(n, 1)
    own = np.zeros(k)
    total = 0.0
    for start in range(0, n, chunk):
        e = np.asarray(emb[start : start + chunk], dtype=np.float64)
        c = codes[start : start + chunk]
        own += np.bincount(c, weights=np.linalg.norm(e - centroids[c], axis=1), minlength=k)
        total += float(np.linalg.norm(e - centre, axis=1).sum())
    spread = total / max(n, 1)
    if spread <= 0:
        return np.full(k, np.nan)
    return own / np.maximum(counts, 1) / spread


def _nan_reduce(
    how: Callable[[np.ndarray, np.ndarray], np.ndarray], a: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """Combine sub-signals, ignoring the one that could not be computed (fmax/fmin do)."""
    with np.errstate(invalid="ignore"):
        return how(a, b)


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
