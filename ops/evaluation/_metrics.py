"""Cluster quality and ground-truth scores for a clustering run.

Internal scores (`cluster_quality`) need no labels and are logged on every run;
external scores (`external_scores`, `ring_capture`) need the synthetic generator's
truth and are used by evaluation and benchmarks only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
from scipy.spatial.distance import cdist
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score

from ops.constants import NOISE

_EPS = 1e-12


def cluster_quality(
    X: np.ndarray | Callable[[np.ndarray], np.ndarray],
    labels: np.ndarray,
    sample_size: int = 5000,
    seed: int = 0,
) -> dict[str, float]:
    """Label-free quality of a clustering, cheap enough for every run.

    Silhouette and DBCV are O(n²), so both run on one uniform sample of at most
    ``sample_size`` points (noise included: DBCV charges noise against the score,
    silhouette drops it). Values that cannot be computed are NaN, never raised,
    so a degenerate run still logs its metrics. ``X`` is the points, one row per label,
    or a function giving the rows at an array of indices: a caller whose points are in
    storage reads only the sample.

    Returns
    -------
    dict
        ``n_points``, ``n_clusters``, ``noise_share``, ``size_min``, ``size_q25``,
        ``size_median``, ``size_q75``, ``size_max``, ``largest_cluster_share``,
        ``silhouette`` (Euclidean, sample, noise excluded), ``dbcv`` (sample), ``sample_size``.
    """
    labels = np.asarray(labels)
    if not callable(X):
        X = np.asarray(X)  # no float64 copy of the whole matrix: only the sample is converted
        if X.ndim != 2 or len(X) != len(labels):
            raise ValueError(
                f"X must be 2-D with one row per label, got {X.shape} and {labels.shape}"
            )
    n = len(labels)
    ids, sizes = np.unique(labels[labels != NOISE], return_counts=True)
    out: dict[str, float] = {
        "n_points": float(n),
        "n_clusters": float(len(ids)),
        "noise_share": float(np.mean(labels == NOISE)) if n else float("nan"),
    }
    qs = np.quantile(sizes, [0.0, 0.25, 0.5, 0.75, 1.0]) if len(sizes) else [np.nan] * 5
    for name, q in zip(("min", "q25", "median", "q75", "max"), qs, strict=True):
        out[f"size_{name}"] = float(q)
    out["largest_cluster_share"] = float(sizes.max() / n) if len(sizes) else float("nan")

    rng = np.random.default_rng(seed)
    idx = rng.choice(n, size=sample_size, replace=False) if n > sample_size else np.arange(n)
    Xs, ls = np.asarray(X(idx) if callable(X) else X[idx], dtype=np.float64), labels[idx]
    out["sample_size"] = float(len(idx))
    out["silhouette"] = _silhouette(Xs, ls, seed)
    out["dbcv"] = dbcv(Xs, ls)
    return out


def _silhouette(X: np.ndarray, labels: np.ndarray, seed: int) -> float:
    keep = labels != NOISE
    k = len(np.unique(labels[keep]))
    if k < 2 or k >= keep.sum():
        return float("nan")
    return float(silhouette_score(X[keep], labels[keep], random_state=seed))


def dbcv(X: np.ndarray, labels: np.ndarray) -> float:
    """Density-Based Clustering Validation (Moulavi et al., SDM 2014), exact on the given points.

    Re-implemented with numpy/scipy because ``hdbscan.validity`` is a dev-only
    dependency. Follows the paper: all-points core distance within each cluster,
    mutual-reachability MST per cluster, density sparseness = largest internal MST
    edge, density separation = smallest mutual reachability between internal
    nodes of two clusters; validity weighted by cluster size over *all* points so
    noise lowers the score. Range [-1, 1], higher is better; NaN with < 2 clusters.
    The all-points core distance is computed in log space because (1/d)^dim
    overflows for embedding-sized ``dim``.
    """
    X = np.asarray(X, dtype=np.float64)
    labels = np.asarray(labels)
    ids = [c for c in np.unique(labels) if c != NOISE]
    if len(ids) < 2:
        return float("nan")
    dim = X.shape[1]
    members: list[np.ndarray] = []
    cores: list[np.ndarray] = []
    internal: list[np.ndarray] = []
    sparseness = np.empty(len(ids))
    for i, c in enumerate(ids):
        Xc = X[labels == c]
        members.append(Xc)
        if len(Xc) < 2:
            # a singleton has no density to speak of: separation alone decides
            cores.append(np.zeros(1))
            internal.append(np.ones(1, dtype=bool))
            sparseness[i] = 0.0
            continue
        d = np.maximum(cdist(Xc, Xc), _EPS)
        core = _all_points_core_distance(d, dim)
        cores.append(core)
        mr = np.maximum(np.maximum(core[:, None], core[None, :]), d)
        np.fill_diagonal(mr, 0.0)
        src, dst, weight = _dense_mst(mr)
        degree = np.bincount(np.r_[src, dst], minlength=len(Xc))
        is_internal = degree > 1
        internal_edges = is_internal[src] & is_internal[dst]
        if not is_internal.any():  # two points: both are leaves, use them anyway
            is_internal[:] = True
            internal_edges[:] = True
        internal.append(is_internal)
        sparseness[i] = weight[internal_edges].max() if internal_edges.any() else 0.0

    # one cdist per cluster against every other cluster's internal nodes, reduced per
    # cluster with reduceat: thousands of small clusters stay O(k) numpy calls, not O(k^2)
    int_X = [m[f] for m, f in zip(members, internal, strict=True)]
    int_core = [c[f] for c, f in zip(cores, internal, strict=True)]
    all_X, all_core = np.concatenate(int_X), np.concatenate(int_core)
    starts = np.cumsum([0] + [len(a) for a in int_X[:-1]])
    separation = np.empty(len(ids))
    for i in range(len(ids)):
        mr = np.maximum(np.maximum(int_core[i][:, None], all_core[None, :]), cdist(int_X[i], all_X))
        per_cluster = np.minimum.reduceat(mr.min(axis=0), starts)
        per_cluster[i] = np.inf
        separation[i] = per_cluster.min()
    denom = np.maximum(separation, sparseness)
    validity = np.where(denom > 0, (separation - sparseness) / np.where(denom > 0, denom, 1), 0)
    weights = np.array([len(m) for m in members]) / len(labels)
    return float(np.sum(weights * validity))


def _all_points_core_distance(d: np.ndarray, dim: int) -> np.ndarray:
    """(mean_j (1/d_ij)^dim)^(-1/dim) over the other members, in log space.

    A hand-rolled, in-place log-sum-exp: scipy's makes several n x n copies, which
    dominated the run time on a 5,000-point sample.
    """
    n = len(d)
    a = np.log(d)
    a *= -dim
    np.fill_diagonal(a, -np.inf)  # exp(-inf) = 0 drops the point itself
    m = a.max(axis=1)
    a -= m[:, None]
    np.exp(a, out=a)
    lse = np.log(a.sum(axis=1)) + m
    return np.exp(-(lse - np.log(n - 1)) / dim)


def _dense_mst(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prim's algorithm on a dense symmetric matrix: (source, target, weight) of n-1 edges.

    O(n^2) with one vectorised row update per step; scipy's sparse MST would first turn
    the complete graph into n^2 sparse edges (benchmarks/README.md has the figure). Mutual
    reachability has many tied weights, so which MST (and thus which nodes are
    internal) is a convention: like ``hdbscan.validity``, nodes join in Prim order
    from node 0 and each attaches to the lowest-numbered earlier node at (numpy
    ``isclose``) the same distance, which makes the scores agree with it.
    """
    n = len(w)
    src = np.empty(n - 1, dtype=np.int64)
    dst = np.empty(n - 1, dtype=np.int64)
    weight = np.empty(n - 1)
    best = w[0].astype(np.float64, copy=True)
    done = np.zeros(n, dtype=bool)
    done[0] = True
    best[0] = np.inf
    for k in range(n - 1):
        j = int(np.argmin(best))
        row = w[j]
        src[k] = np.flatnonzero(done & np.isclose(row, best[j]))[0]
        dst[k], weight[k] = j, best[j]
        done[j] = True
        best[j] = np.inf
        closer = (row < best) & ~done
        best[closer] = row[closer]
    return src, dst, weight


def external_scores(labels: np.ndarray, truth: np.ndarray | pd.Series) -> dict[str, float]:
    """Agreement with a known partition (e.g. the generator's ring id).

    Noise is one more label here, as the analyst sees it. ``ari_clustered`` repeats
    ARI on points the clustering did not call noise, separating "found the
    groups" from "dared to assign". Missing truth values are dropped.
    """
    labels = np.asarray(labels)
    truth_s = pd.Series(np.asarray(truth, dtype=object))
    known = truth_s.notna().to_numpy()
    lab, tru = labels[known], truth_s[known].astype(str).to_numpy()
    if len(lab) == 0:
        return {"ari": float("nan"), "nmi": float("nan"), "ari_clustered": float("nan"), "n": 0.0}
    clustered = lab != NOISE
    return {
        "ari": float(adjusted_rand_score(tru, lab)),
        "nmi": float(normalized_mutual_info_score(tru, lab)),
        "ari_clustered": (
            float(adjusted_rand_score(tru[clustered], lab[clustered]))
            if clustered.any()
            else float("nan")
        ),
        "n": float(len(lab)),
    }


def ring_capture(
    labels: np.ndarray,
    risky_mask: np.ndarray | pd.Series,
    truth_pattern: pd.Series,
    is_fraud: np.ndarray | pd.Series | None = None,
) -> pd.DataFrame:
    """How much of each planted fraud pattern ends up in clusters flagged risky.

    Parameters
    ----------
    labels : cluster id per transaction (-1 noise).
    risky_mask : bool per transaction, True when its cluster is flagged risky.
    truth_pattern : pattern name per transaction (``NaN``/``None`` = legitimate,
        shown as ``"(none)"``).
    is_fraud : optional 0/1 per transaction; enables precision columns.

    Returns
    -------
    DataFrame, one row per pattern, largest first: ``pattern``, ``n``, ``n_in_risky``,
    ``recall`` (share of the pattern inside risky clusters), ``share_of_risky``
    (share of the risky set the pattern makes), ``n_risky_clusters`` (how many
    risky clusters it is spread over), ``top_cluster`` and ``top_cluster_share``
    (the risky cluster holding most of it, and its share of the pattern), and,
    with ``is_fraud``, ``fraud_rate`` of the pattern. The overall risky-set
    precision w.r.t. ``is_fraud`` is in ``df.attrs["risky_precision"]`` and
    also as the constant column ``risky_precision`` so it survives a parquet round-trip.
    """
    labels = np.asarray(labels)
    risky = np.asarray(risky_mask, dtype=bool)
    pattern = pd.Series(np.asarray(truth_pattern, dtype=object)).fillna("(none)").astype(str)
    if not (len(labels) == len(risky) == len(pattern)):
        raise ValueError("labels, risky_mask and truth_pattern must have the same length")
    frame = pd.DataFrame({"pattern": pattern.to_numpy(), "cluster": labels, "risky": risky})
    n_risky = int(risky.sum())
    rows = []
    for name, g in frame.groupby("pattern", sort=False):
        in_risky = g.loc[g["risky"], "cluster"]
        counts = in_risky.value_counts()
        row: dict[str, object] = {
            "pattern": name,
            "n": len(g),
            "n_in_risky": len(in_risky),
            "recall": len(in_risky) / len(g),
            "share_of_risky": len(in_risky) / n_risky if n_risky else float("nan"),
            "n_risky_clusters": len(counts),
            "top_cluster": int(counts.index[0]) if len(counts) else NOISE,
            "top_cluster_share": counts.iloc[0] / len(g) if len(counts) else 0.0,
        }
        rows.append(row)
    out = pd.DataFrame(rows).sort_values("n", ascending=False, ignore_index=True)
    if is_fraud is not None:
        fraud = np.asarray(is_fraud, dtype=float)
        frame["fraud"] = fraud
        out["fraud_rate"] = out["pattern"].map(frame.groupby("pattern")["fraud"].mean())
        precision = float(np.nanmean(fraud[risky])) if n_risky else float("nan")
        out["risky_precision"] = precision
        out.attrs["risky_precision"] = precision
    return out


def ring_rule_scores(
    labels: np.ndarray,
    risk: pd.DataFrame,
    rule_hits: Mapping[int, np.ndarray],
    truth_pattern: pd.Series,
    is_fraud: np.ndarray | pd.Series,
) -> pd.DataFrame:
    """Per planted pattern: how it was flagged, and how well the rules of its clusters find it.

    A risky cluster *holds* the pattern most of its members belong to; a risky cluster of
    mostly legitimate traffic holds ``"(none)"``, so false alarms keep a row. The rules of
    the clusters a pattern holds are OR-ed and applied to every transaction of the window,
    as a real-time engine would apply them: no cluster id is needed to match.

    Parameters
    ----------
    labels : cluster id per transaction (-1 noise).
    risk : `ops.risk.assess_risk`'s output (``cluster``, ``risky``, ``label_flag``,
        ``coordination_flag``).
    rule_hits : per risky cluster, bool per transaction: matched by any of its rules
        (a cluster without rules may be absent).
    truth_pattern : pattern name per transaction (``NaN``/``None`` = legitimate).
    is_fraud : 0/1 per transaction.

    Returns
    -------
    DataFrame, one row per pattern: ``n``; ``n_clusters`` risky clusters held, of which
    ``by_labels`` and ``by_coordination`` flagged so (a cluster may be both) and
    ``n_with_rules`` explained by at least one rule; ``recall`` (share of the pattern in
    any risky cluster), ``recall_by_labels``, ``recall_by_coordination`` (in a cluster
    flagged that way); ``precision`` (share of its clusters' members in the pattern);
    ``rule_support`` (transactions matched), ``rule_precision`` (share of them in the
    pattern), ``rule_fraud_precision`` (share that is fraud of any pattern) and
    ``rule_recall`` (share of the pattern matched).
    """
    labels = np.asarray(labels)
    pattern = pd.Series(np.asarray(truth_pattern, dtype=object)).fillna("(none)").astype(str)
    fraud = np.asarray(is_fraud, dtype=bool)
    if not (len(labels) == len(pattern) == len(fraud)):
        raise ValueError("labels, truth_pattern and is_fraud must have the same length")
    flags = risk.set_index("cluster")
    risky_ids = [int(c) for c in flags.index[flags["risky"].astype(bool)]]
    held = pd.Series(pattern.to_numpy()).groupby(labels).agg(lambda s: s.value_counts().index[0])
    in_flagged = {
        how: np.isin(labels, [c for c in risky_ids if flags.loc[c, f"{how}_flag"]])
        for how in ("label", "coordination")
    }
    in_risky = np.isin(labels, risky_ids)
    rows = []
    for name in pattern.value_counts().index:
        mine = [c for c in risky_ids if held[c] == name]
        is_ring = (pattern == name).to_numpy()
        members = np.isin(labels, mine)
        hits = np.zeros(len(labels), dtype=bool)
        for c in mine:
            if c in rule_hits:
                hits |= np.asarray(rule_hits[c], dtype=bool)
        support = int(hits.sum())
        rows.append(
            {
                "pattern": name,
                "n": int(is_ring.sum()),
                "n_clusters": len(mine),
                "by_labels": int(sum(bool(flags.loc[c, "label_flag"]) for c in mine)),
                "by_coordination": int(sum(bool(flags.loc[c, "coordination_flag"]) for c in mine)),
                "n_with_rules": int(sum(bool(np.any(rule_hits.get(c, False))) for c in mine)),
                "recall": float((in_risky & is_ring).sum() / is_ring.sum()),
                "recall_by_labels": float((in_flagged["label"] & is_ring).sum() / is_ring.sum()),
                "recall_by_coordination": float(
                    (in_flagged["coordination"] & is_ring).sum() / is_ring.sum()
                ),
                "precision": float(is_ring[members].mean()) if members.any() else float("nan"),
                "rule_support": support,
                "rule_precision": float(is_ring[hits].mean()) if support else float("nan"),
                "rule_fraud_precision": float(fraud[hits].mean()) if support else float("nan"),
                "rule_recall": float((hits & is_ring).sum() / is_ring.sum()),
            }
        )
    return pd.DataFrame(rows)
