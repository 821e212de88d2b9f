"""Coordination: the structure a ring leaves in its cluster, before any label exists.

Flash fraud arrives before labels do, so `ops.risk.assess_risk` also scores each cluster on
what its members share: near-identical behaviour, machine-like timing, shared devices or
addresses, young accounts and bursts in time. Each measure is one step that reads the members
and returns its own columns; each signal maps a measure to [0, 1] by a linear ramp whose ends
are tunable in `CoordinationConfig`; the score is their weighted mean over the signals that
could be computed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.special import gammaln

from ops.features import path_codes, path_keys

SIGNALS = ("identical", "machine", "shared_ids", "young", "burst")


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
    def of(cls, codes: np.ndarray) -> _IdPopulation:
        """The population of the values coded ``codes`` (``pd.factorize``'s, ``-1`` missing)."""
        vc = np.bincount(codes[codes >= 0])
        vc = vc[vc > 0]
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
    # lists of page names, counted as whole lists: names may hold any character
    codes, first = path_codes(df["path"])  # None -> -1
    known = codes >= 0
    cluster, code, rows = _pair_counts(key[known], codes[known], clusters)
    # per cluster its most common path; of equally common ones, the one met first in all
    # the rows (lowest code): a stable rule where a sort of counts left ties to chance
    best = np.lexsort((code, -rows, cluster))
    best = best[np.r_[True, cluster[best][1:] != cluster[best][:-1]]]
    n_known = np.bincount(cluster, weights=rows, minlength=len(clusters))
    share = np.full(len(clusters), np.nan)
    share[cluster[best]] = rows[best] / n_known[cluster[best]]
    t["path_share"] = share
    modal: list[list[str] | None] = [None] * len(clusters)
    for at, path in zip(cluster[best], path_keys(df["path"].iloc[first[code[best]]]), strict=True):
        modal[at] = list(path or ())  # a known code: never a missing path
    t["modal_path"] = pd.Series(modal, index=t.index, dtype=object)
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
        # the values hashed once, then counted as integers
        codes = pd.factorize(df[col], use_na_sentinel=True)[0].astype(np.int64)
        pop = _IdPopulation.of(codes)
        known = codes >= 0
        cluster, _, rows = _pair_counts(key[known], codes[known], clusters)
        distinct = np.bincount(cluster, minlength=len(clusters))
        measured = distinct > 0  # else no member holds an id: NaN, as groupby leaves them
        size = np.bincount(cluster, weights=rows, minlength=len(clusters))
        stats = pd.DataFrame(
            {
                "size": np.where(measured, size, np.nan),
                "nunique": np.where(measured, distinct, np.nan),
            },
            index=clusters,
        )
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


def _pair_counts(
    key: np.ndarray, codes: np.ndarray, clusters: pd.Index
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct ``(cluster, code)`` pairs of the rows, in order, and each one's rows.

    ``key`` holds each row's cluster, among ``clusters`` (sorted); ``codes`` are non-negative.
    One sort of integers: NumPy's hash-based ``np.unique`` took 1.8 s for 3M pairs here,
    against 0.2 s for the sort that counting takes.

    Returns
    -------
    cluster : ndarray
        Each pair's cluster, as a position in ``clusters``.
    code : ndarray
    rows : ndarray
    """
    position = np.searchsorted(clusters.to_numpy(), key).astype(np.int64)
    width = int(codes.max(initial=0)) + 1
    pairs, rows = np.unique(position * width + codes, return_counts=True)
    return pairs // width, pairs % width, rows


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

    Sums by sparse indicator products and distances, both in chunks, so a 1M x 128
    float32 embedding never gets a float64 copy (1 GB) or an n x d temporary. (One product
    over all rows cast the whole embedding to float64 first: 0.18 s at 1M x 32, 1.1-1.3 s
    at 3M, against 0.10 and 0.25 s by chunks.)
    """
    n = len(emb)
    codes = np.searchsorted(ids, key)
    k = len(ids)
    sums = np.zeros((k, emb.shape[1]))
    for start in range(0, n, chunk):
        c = codes[start : start + chunk]
        indicator = sparse.csr_matrix((np.ones(len(c)), (c, np.arange(len(c)))), (k, len(c)))
        sums += indicator @ np.asarray(emb[start : start + chunk], dtype=np.float64)
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
