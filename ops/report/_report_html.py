"""The run report: one self-contained HTML page, and a Markdown digest for Prefect.

Self-contained because reports are archived with the run (MLflow artifact, object
store) and opened years later, offline, by people outside the team: every image is
an inline base64 PNG, the CSS is inline, there are no scripts and no URLs.

The page is rendered from the Jinja2 templates in ``templates/`` with autoescaping on:
page names, feature values and reasons come from the click-stream and are
attacker-controlled in fraud data, so no value may reach the page unescaped. The
functions here only select and format; the templates hold the markup, one section per
file under ``templates/sections/``.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined
from matplotlib.figure import Figure

from ops.constants import NOISE
from ops.report import _plots as plots
from ops.risk import Rule


@dataclass
class ReportContext:
    """Everything the report shows; optional parts are skipped when absent.

    ``risk`` is `ops.risk.assess_risk`'s output. ``labels``, ``X`` and ``ts`` are
    per transaction and aligned (``X`` may be a sample with its own ``labels``;
    pass ``ts`` only if aligned with ``labels``). ``rules`` and ``narratives`` are
    keyed by cluster id. ``missed`` is `ops.risk.missed_fraud`'s output.
    """

    run_id: str
    risk: pd.DataFrame
    labels: np.ndarray | None = None
    X: np.ndarray | None = None
    ts: np.ndarray | pd.Series | None = None
    losses: Sequence[float] = ()
    rules: Mapping[int, Sequence[Rule]] = field(default_factory=dict)
    narratives: Mapping[int, str] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    missed: pd.DataFrame | None = None
    #: `tasks.explain.flag_summary`: transactions flagged per reason, membership calibration
    flags: Mapping[str, Any] = field(default_factory=dict)
    title: str = "Shoal run report"
    created_at: str | None = None
    sample_size: int = 5000


#: Autoescaping on for every template: a value reaches the page only through ``{{ }}``.
_TEMPLATES = Environment(
    loader=PackageLoader("ops.report", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _fmt(x: object) -> str:
    if isinstance(x, bool | np.bool_):
        return "yes" if x else "no"
    if isinstance(x, int | np.integer):
        return f"{int(x):,}"
    if isinstance(x, float | np.floating):
        if math.isnan(x):
            return "-"
        return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.3g}"
    return str(x)


def _pct(x: float) -> str:
    return "-" if x is None or x != x else f"{x:.0%}"


def _figure(make: Callable[[], Figure], caption: str) -> dict[str, str]:
    """A figure as a base64 PNG; one that fails to draw costs its panel, not the report."""
    try:
        return {"caption": caption, "png": plots.to_base64_png(make())}
    except Exception as exc:  # reporting must not sink a finished run
        return {"caption": caption, "png": "", "error": f"{type(exc).__name__}: {exc}"}


def _figures(ctx: ReportContext) -> list[dict[str, str]]:
    risky_ids = [int(c) for c in ctx.risk.loc[ctx.risk["risky"], "cluster"]]
    figs = []
    if ctx.X is not None and ctx.labels is not None and len(ctx.X) == len(ctx.labels):
        figs.append(_figure(
            lambda: plots.projection(ctx.X, ctx.labels, risky_ids, ctx.sample_size),
            "2-D PCA projection of the hybrid vectors, by cluster"))  # fmt: skip
    figs.append(_figure(lambda: plots.cluster_sizes(ctx.risk), "Cluster sizes"))
    if (ctx.risk["n_labelled"] > 0).any():
        figs.append(_figure(
            lambda: plots.fraud_rates(ctx.risk, _base_rate(ctx.risk)),
            "Fraud rate per cluster where labels exist"))  # fmt: skip
    if ctx.ts is not None and ctx.labels is not None and len(ctx.ts) == len(ctx.labels):
        figs.append(_figure(lambda: plots.timeline(ctx.ts, ctx.labels, risky_ids), "Timeline"))
    if len(ctx.losses):
        figs.append(_figure(lambda: plots.loss_curve(ctx.losses), "Training loss per epoch"))
    return figs


def _key_values(d: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(str(k), _fmt(v)) for k, v in sorted(d.items())]


def _flags(flags: Mapping[str, Any]) -> dict[str, Any]:
    """Counts per flag reason; the membership and neighbour-vote thresholds' tables."""
    columns = ["threshold", "n_flagged", "n_labelled", "n_fraud", "precision", "recall"]
    calibrations = []
    for key, name in (("membership", "Membership"), ("neighbours", "Neighbour vote")):
        doc = flags.get(key) or {}
        if not doc:
            continue
        rounds = doc.get("rounds") or []
        calibrations.append(
            {
                "name": name,
                "threshold": _fmt(doc.get("threshold")),
                "how": "calibrated on labels"
                if doc.get("calibrated")
                else "fallback, too few labels",
                # the vote repeats with what it flagged; its table is the last round's
                "rounds": ", ".join(_fmt(r.get("threshold")) for r in rounds[:-1]),
                "table": [[_fmt(row[c]) for c in columns] for row in doc.get("table", [])],
            }
        )
    return {
        "recorded": bool(flags),
        "counts": _key_values(flags.get("counts", {})),
        "columns": columns,
        "calibrations": calibrations,
    }


def _rule(rule: Rule) -> dict[str, str]:
    return {
        "text": rule.describe(),
        "support": f"{rule.support:,}",
        "precision": _pct(rule.precision),
        "recall": _pct(rule.recall),
        "over": _group_note(rule),
    }


def _group_note(rule: Rule) -> str:
    """Scores of a group's rule are over all its clusters: say which."""
    if len(rule.clusters) < 2:
        return ""
    return ", over clusters " + ", ".join(str(c) for c in rule.clusters)


def _risk_order(risky: pd.DataFrame) -> pd.DataFrame:
    """Most certain first: the fraud rate's lower bound plus the coordination score."""
    order = risky["wilson_lower"].fillna(0) + risky["coordination_score"].fillna(0)
    return risky.assign(_order=order).sort_values("_order", ascending=False)


def _risky_clusters(ctx: ReportContext) -> list[dict[str, Any]]:
    rows = []
    for _, r in _risk_order(ctx.risk[ctx.risk["risky"]]).iterrows():
        c = int(r["cluster"])
        rows.append(
            {
                "cluster": c,
                "size": _fmt(int(r["size"])),
                "labelled": _fmt(int(r["n_labelled"])),
                "fraud_rate": _pct(r["fraud_rate"]),
                "lower_bound": _pct(r["wilson_lower"]),
                "coordination": _fmt(float(r["coordination_score"])),
                "reason": r["risk_reason"],
                "narrative": ctx.narratives.get(c, ""),
                "rules": [_rule(rule) for rule in ctx.rules.get(c, [])],
            }
        )
    return rows


def _missed_fraud(missed: pd.DataFrame | None) -> dict[str, Any] | None:
    """Missed fraud per risky cluster: count, and the amount where known."""
    if missed is None or not len(missed):
        return None
    by = missed.groupby("cluster")
    agg = by.size().rename("n").to_frame()
    if "amount" in missed:
        agg["amount"] = by["amount"].sum()
    rows = [
        (c, [_fmt(v) for v in r])
        for c, r in zip(agg.index, agg.itertuples(index=False), strict=True)
    ]
    return {"header": ["cluster", *agg.columns], "rows": rows}


#: All-clusters table: column -> (header, formatter). Rates as percentages, signals with two
#: decimals, so a 13-column table fits the page instead of printing ``1.7e-18``.
_ALL_CLUSTER_COLUMNS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "cluster": ("cluster", _fmt),
    "size": ("size", _fmt),
    "n_labelled": ("labelled", _fmt),
    "fraud_rate": ("fraud rate", lambda v: "-" if v != v else f"{v:.1%}"),
    "lift": ("lift", lambda v: "-" if v != v else f"{v:.1f}"),
    "wilson_lower": ("lower bound", lambda v: "-" if v != v else f"{v:.1%}"),
    "coordination_score": ("coordination", lambda v: "-" if v != v else f"{v:.2f}"),
    **{
        f"sig_{s}": (s.replace("_", " "), lambda v: "-" if v != v else f"{v:.2f}")
        for s in ("identical", "machine", "shared_ids", "young", "burst")
    },
    "risky": ("risky", _fmt),
}


def _all_clusters(risk: pd.DataFrame, top: int = 100) -> dict[str, Any]:
    """The ``top`` largest clusters, every column formatted; risky rows marked."""
    cols = [c for c in _ALL_CLUSTER_COLUMNS if c in risk]
    largest = risk.sort_values("size", ascending=False).head(top)
    return {
        "header": [_ALL_CLUSTER_COLUMNS[c][0] for c in cols],
        "rows": [
            [_ALL_CLUSTER_COLUMNS[c][1](row[c]) for c in cols] for _, row in largest.iterrows()
        ],
        "row_classes": ["risky" if risky else "" for risky in largest["risky"]],
        "shown": len(largest),
        "total": len(risk),
    }


def _base_rate(risk: pd.DataFrame) -> float:
    """From `assess_risk`'s attrs, or recomputed: attrs do not survive every Parquet round-trip."""
    base = risk.attrs.get("base_rate")
    if base is None and {"n_fraud", "n_labelled"} <= set(risk.columns):
        n = risk["n_labelled"].sum()
        base = float(risk["n_fraud"].sum() / n) if n else float("nan")
    return float("nan") if base is None else float(base)


def _kpis(ctx: ReportContext) -> dict[str, str]:
    risk = ctx.risk
    clusters = risk[risk["cluster"] != NOISE]
    n_total = int(risk["size"].sum())
    noise = int(risk.loc[risk["cluster"] == NOISE, "size"].sum())
    out = {
        "transactions": _fmt(n_total),
        "clusters": _fmt(len(clusters)),
        "noise": _pct(noise / n_total) if n_total else "-",
        "risky clusters": _fmt(int(clusters["risky"].sum())),
        "in risky clusters": _fmt(int(clusters.loc[clusters["risky"], "size"].sum())),
    }
    base = _base_rate(risk)
    if base is not None and base == base:
        out["base fraud rate"] = f"{base:.2%}"
    if ctx.missed is not None:
        out["missed fraud caught"] = _fmt(len(ctx.missed))
        if "amount" in ctx.missed:
            out["amount missed"] = _fmt(float(ctx.missed["amount"].sum()))
    return out


def render_report(ctx: ReportContext) -> str:
    """The whole report as one HTML string (write it as ``report.html``)."""
    created = ctx.created_at or dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return _TEMPLATES.get_template("report.html.j2").render(
        title=ctx.title,
        run_id=ctx.run_id,
        created=created,
        kpis=_kpis(ctx),
        risky=_risky_clusters(ctx),
        missed=_missed_fraud(ctx.missed),
        flags=_flags(ctx.flags),
        figures=_figures(ctx),
        all_clusters=_all_clusters(ctx.risk),
        metrics=_key_values(ctx.metrics),
        params=_key_values(ctx.params),
    )


def _md(x: object) -> str:
    """Text safe for a Markdown table cell that may also be rendered as HTML."""
    return html.escape(str(x)).replace("|", "\\|").replace("\n", " ")


def render_markdown_summary(ctx: ReportContext, max_rows: int = 20) -> str:
    """Short digest for a Prefect Markdown artifact: key numbers and the risky clusters."""
    lines = [f"# {_md(ctx.title)}", "", f"Run `{_md(ctx.run_id)}`", ""]
    lines += [f"- **{_md(k)}**: {_md(v)}" for k, v in _kpis(ctx).items()]
    for key in ("silhouette", "dbcv", "noise_share", "ari", "nmi"):
        if key in ctx.metrics:
            lines.append(f"- **{key}**: {_md(_fmt(ctx.metrics[key]))}")
    risky = ctx.risk[ctx.risk["risky"]]
    lines += ["", "## Risky clusters", ""]
    if risky.empty:
        lines.append("No cluster was flagged risky in this window.")
        return "\n".join(lines) + "\n"
    lines += [
        "| cluster | size | fraud rate | coordination | why | description | best rule |",
        "|---:|---:|---:|---:|---|---|---|",
    ]
    for _, r in _risk_order(risky).head(max_rows).iterrows():
        c = int(r["cluster"])
        rules = ctx.rules.get(c, [])
        best = (
            f"{rules[0].describe()} (precision {_pct(rules[0].precision)}, "
            f"recall {_pct(rules[0].recall)}{_group_note(rules[0])})"
            if rules
            else "-"
        )
        lines.append(
            f"| {c} | {int(r['size']):,} | {_pct(r['fraud_rate'])} | "
            f"{_fmt(float(r['coordination_score']))} | {_md(r['risk_reason'])} | "
            f"{_md(ctx.narratives.get(c, ''))} | {_md(best)} |"
        )
    if len(risky) > max_rows:
        lines.append(f"\n…and {len(risky) - max_rows} more in report.html.")
    return "\n".join(lines) + "\n"
