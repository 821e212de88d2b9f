"""Figures for the run report, drawn headless.

Uses matplotlib's object API (`matplotlib.figure.Figure`), never pyplot: no global
backend switch, no figure registry to leak from long-running workers, and safe in
threads. Every function returns a Figure; `to_base64_png` makes it embeddable.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Collection, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.decomposition import PCA

from ops.constants import NOISE

RISKY_COLOUR = "#d62728"
PLAIN_COLOUR = "#4c72b0"
NOISE_COLOUR = "#c8c8c8"


def to_base64_png(fig: Figure, dpi: int = 96) -> str:
    """PNG bytes of ``fig`` as base64 text, for ``<img src="data:image/png;base64,...">``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _palette(n: int) -> np.ndarray:
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    return np.array([cmap(i % 20) for i in range(n)])


def projection(
    X: np.ndarray,
    labels: np.ndarray,
    risky: Collection[int] = (),
    sample_size: int = 5000,
    seed: int = 0,
) -> Figure:
    """PCA of a sample of the hybrid space, coloured by cluster, risky clusters ringed in red.

    PCA rather than t-SNE/UMAP: linear, deterministic and seconds on any size, and
    distances keep a meaning the analyst can trust; a sample keeps the PNG light.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(X), sample_size, replace=False) if len(X) > sample_size else None
    Xs, ls = (X[idx], labels[idx]) if idx is not None else (X, labels)
    Xs = np.asarray(Xs, dtype=np.float64)  # the sample only: a float64 copy of 1M x 64 is 0.5 GB
    if Xs.shape[1] >= 2 and len(Xs) >= 2:
        P = PCA(n_components=2, random_state=seed).fit_transform(Xs)
    else:
        P = np.column_stack([Xs[:, 0] if Xs.shape[1] else np.zeros(len(Xs)), np.zeros(len(Xs))])
    fig = Figure(figsize=(7, 5.5), layout="tight")
    ax = fig.add_subplot()
    noise = ls == NOISE
    ax.scatter(P[noise, 0], P[noise, 1], s=3, c=NOISE_COLOUR, label="noise", linewidths=0)
    ids = [c for c in np.unique(ls) if c != NOISE]
    colours = _palette(len(ids))
    risky_set = {int(c) for c in risky}
    for colour, c in zip(colours, ids, strict=True):
        m = ls == c
        is_risky = int(c) in risky_set
        ax.scatter(
            P[m, 0],
            P[m, 1],
            s=14 if is_risky else 5,
            color=colour,
            edgecolors=RISKY_COLOUR if is_risky else "none",
            linewidths=0.8 if is_risky else 0,
        )
        if is_risky:
            cx, cy = np.median(P[m], axis=0)
            ax.annotate(str(c), (cx, cy), color=RISKY_COLOUR, fontsize=9, fontweight="bold")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(f"Hybrid space, {len(Xs):,} sampled transactions (risky clusters ringed red)")
    return fig


def cluster_sizes(risk: pd.DataFrame, top: int = 40) -> Figure:
    """Largest clusters by size; risky ones in red. Expects `assess_risk` columns."""
    r = risk[risk["cluster"] != NOISE].nlargest(top, "size")
    fig = Figure(figsize=(8, 3.5), layout="tight")
    ax = fig.add_subplot()
    colours = [RISKY_COLOUR if k else PLAIN_COLOUR for k in r["risky"]]
    ax.bar(range(len(r)), r["size"], color=colours)
    ax.set_xticks(range(len(r)), [str(c) for c in r["cluster"]], rotation=90, fontsize=7)
    ax.set_xlabel("cluster")
    ax.set_ylabel("transactions")
    n_noise = int(risk.loc[risk["cluster"] == NOISE, "size"].sum())
    ax.set_title(f"Cluster sizes (top {len(r)}; {n_noise:,} noise not shown; red = risky)")
    return fig


def fraud_rates(risk: pd.DataFrame, base_rate: float | None = None, top: int = 40) -> Figure:
    """Fraud rate per labelled cluster with its Wilson lower bound and the base rate."""
    r = risk[(risk["cluster"] != NOISE) & (risk["n_labelled"] > 0)]
    r = r.sort_values(["wilson_lower", "fraud_rate"], ascending=False).head(top)
    fig = Figure(figsize=(8, 3.5), layout="tight")
    ax = fig.add_subplot()
    x = np.arange(len(r))
    colours = [RISKY_COLOUR if k else PLAIN_COLOUR for k in r["risky"]]
    ax.bar(x, r["fraud_rate"], color=colours, alpha=0.8, label="fraud rate (labelled)")
    ax.scatter(x, r["wilson_lower"], marker="_", s=120, c="black", label="Wilson lower bound")
    if base_rate is not None and base_rate == base_rate:
        ax.axhline(base_rate, color="grey", linestyle="--", linewidth=1, label="base rate")
    ax.set_xticks(x, [str(c) for c in r["cluster"]], rotation=90, fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_xlabel("cluster")
    ax.set_ylabel("share confirmed fraud")
    ax.set_title("Fraud rate where labelled (clusters with labels, best-evidenced first)")
    if len(r):
        ax.legend(fontsize=7, loc="upper right")
    return fig


def loss_curve(losses: Sequence[float]) -> Figure:
    """Per-epoch training loss of the sequence encoder."""
    fig = Figure(figsize=(6, 3), layout="tight")
    ax = fig.add_subplot()
    y = np.asarray(list(losses), dtype=np.float64)
    ax.plot(np.arange(1, len(y) + 1), y, marker="o", markersize=3, color=PLAIN_COLOUR)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("Encoder training loss")
    ax.grid(alpha=0.3)
    return fig


def timeline(
    ts: np.ndarray | pd.Series,
    labels: np.ndarray,
    risky: Collection[int] = (),
    top: int = 25,
    max_points: int = 20_000,
    seed: int = 0,
) -> Figure:
    """When each cluster's transactions happened: one row per cluster, risky ones first.

    A strip per cluster shows bursts (a ring that appears within hours) at a glance.
    Shows the risky clusters and then the largest others, ``top`` rows in all.
    """
    # keep a Series as is: np.asarray of a tz-aware column is an object array of Timestamps
    t = ts.reset_index(drop=True) if isinstance(ts, pd.Series) else pd.Series(ts)
    if pd.api.types.is_numeric_dtype(t):
        t = pd.to_datetime(t, unit="ms", utc=True)  # epoch milliseconds, as in the data contract
    elif not pd.api.types.is_datetime64_any_dtype(t):
        t = pd.to_datetime(t, utc=True, format="ISO8601")
    elif t.dt.tz is None:
        t = t.dt.tz_localize("UTC")
    t = t.dt.tz_localize(None)
    labels = np.asarray(labels)
    sizes = pd.Series(labels[labels != NOISE]).value_counts()
    risky_ids = [c for c in sizes.index if int(c) in {int(r) for r in risky}]
    others = [c for c in sizes.index if c not in set(risky_ids)]
    rows = (risky_ids + others)[:top]
    fig = Figure(figsize=(8, 0.25 * max(len(rows), 4) + 1.2), layout="tight")
    ax = fig.add_subplot()
    rng = np.random.default_rng(seed)
    for i, c in enumerate(rows):
        idx = np.flatnonzero(labels == c)
        if len(idx) > max_points // max(len(rows), 1):
            idx = rng.choice(idx, max_points // max(len(rows), 1), replace=False)
        colour = RISKY_COLOUR if c in risky_ids else PLAIN_COLOUR
        y = i + rng.uniform(-0.3, 0.3, len(idx))
        ax.scatter(t.iloc[idx].to_numpy(), y, s=2, color=colour, alpha=0.5, linewidths=0)
    ax.set_yticks(range(len(rows)), [str(c) for c in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_ylabel("cluster")
    ax.set_title("When each cluster's transactions happened (red = risky)")
    fig.autofmt_xdate()
    return fig
