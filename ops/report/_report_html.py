"""The run report: one self-contained HTML page, and a Markdown digest for Prefect.

Self-contained because reports are archived with the run (MLflow artifact, object
store) and opened years later, offline, by people outside the team: every image is
an inline base64 PNG, the CSS is inline, there are no scripts and no URLs. Every
piece of text that came from data (cluster reasons, feature names, parameters)
goes through `html.escape`: feature values are attacker-controlled in fraud data.
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
from matplotlib.figure import Figure

from ops.report import _plots as plots
from ops.risk import Rule

NOISE = -1


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


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:1150px;color:#222;line-height:1.4;padding:0 1em}
h1{margin-bottom:.1em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.meta{color:#666} .kpis{display:flex;gap:1.5em;flex-wrap:wrap;margin:1em 0}
.kpi{background:#f5f6f8;border-radius:6px;padding:.6em 1em} .kpi b{display:block;font-size:1.5em}
table{border-collapse:collapse;width:100%;font-size:.9em;margin:.5em 0}
th,td{border:1px solid #ddd;padding:.35em .5em;text-align:left;vertical-align:top}
th{background:#f5f6f8} td.num{text-align:right;font-variant-numeric:tabular-nums}
.risky{color:#d62728;font-weight:600} code{background:#f5f6f8;padding:0 .25em}
figure{margin:1em 0} img{max-width:100%} figcaption{color:#666;font-size:.85em}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:1em}
.wide{overflow-x:auto}
"""


def _e(x: object) -> str:
    return html.escape(str(x), quote=True)


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


def _img(fig: Figure, caption: str) -> str:
    data = plots.to_base64_png(fig)
    return (
        f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _try_img(make: Callable[[], Figure], caption: str) -> str:
    """A figure that fails to draw costs its panel, not the report."""
    try:
        return _img(make(), caption)
    except Exception as exc:  # reporting must not sink a finished run
        return f"<p class='meta'>{_e(caption)}: not drawn ({_e(type(exc).__name__)}: {_e(exc)})</p>"


def _kv_table(d: Mapping[str, Any]) -> str:
    if not d:
        return "<p class='meta'>none recorded</p>"
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(_fmt(v))}</td></tr>" for k, v in sorted(d.items()))
    return f"<table>{rows}</table>"


def _flags_html(flags: Mapping[str, Any]) -> str:
    if not flags:
        return "<p class='meta'>none recorded</p>"
    out = _kv_table(flags.get("counts", {}))
    membership = flags.get("membership")
    if not membership:
        return out + "<p class='meta'>no soft membership from the clusterer</p>"
    how = "calibrated on labels" if membership["calibrated"] else "fallback, too few labels"
    cols = ["threshold", "n_flagged", "n_labelled", "n_fraud", "precision", "recall"]
    head = "".join(f"<th>{_e(c)}</th>" for c in cols)
    rows = "".join(
        "<tr>" + "".join(f"<td class='num'>{_e(_fmt(r[c]))}</td>" for c in cols) + "</tr>"
        for r in membership["table"]
    )
    return (
        f"{out}<p>Membership threshold {_e(_fmt(membership['threshold']))} ({_e(how)}); "
        f"precision and recall over thresholds, on labelled candidates:</p>"
        f"<table><tr>{head}</tr>{rows}</table>"
    )


def _rules_html(rules: Sequence[Rule]) -> str:
    if not rules:
        return "<span class='meta'>no rule reaches the precision floor</span>"
    items = "".join(
        f"<li>{_e(r.describe())} <span class='meta'>(support {r.support:,}, precision "
        f"{_pct(r.precision)}, recall {_pct(r.recall)}{_group_note(r)})</span></li>"
        for r in rules
    )
    return f"<ol>{items}</ol>"


def _group_note(rule: Rule) -> str:
    """Scores of a group's rule are over all its clusters: say which."""
    if len(rule.clusters) < 2:
        return ""
    return ", over clusters " + ", ".join(str(c) for c in rule.clusters)


def _risky_table(ctx: ReportContext) -> str:
    risky = ctx.risk[ctx.risk["risky"]].copy()
    if risky.empty:
        return "<p>No cluster was flagged risky in this window.</p>"
    risky["_order"] = risky["wilson_lower"].fillna(0) + risky["coordination_score"].fillna(0)
    head = (
        "<tr><th>cluster</th><th>size</th><th>labelled</th><th>fraud rate</th>"
        "<th>lower bound</th><th>coordination</th><th>why flagged</th><th>description</th>"
        "<th>rules</th></tr>"
    )
    body = []
    for _, r in risky.sort_values("_order", ascending=False).iterrows():
        c = int(r["cluster"])
        body.append(
            f"<tr><td class='risky'>{c}</td><td class='num'>{_fmt(int(r['size']))}</td>"
            f"<td class='num'>{_fmt(int(r['n_labelled']))}</td>"
            f"<td class='num'>{_pct(r['fraud_rate'])}</td>"
            f"<td class='num'>{_pct(r['wilson_lower'])}</td>"
            f"<td class='num'>{_fmt(float(r['coordination_score']))}</td>"
            f"<td>{_e(r['risk_reason'])}</td>"
            f"<td>{_e(ctx.narratives.get(c, ''))}</td>"
            f"<td>{_rules_html(ctx.rules.get(c, []))}</td></tr>"
        )
    return f"<table>{head}{''.join(body)}</table>"


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


def _all_clusters_table(risk: pd.DataFrame, top: int = 100) -> str:
    cols = [c for c in _ALL_CLUSTER_COLUMNS if c in risk]
    r = risk.sort_values("size", ascending=False).head(top)
    head = "".join(f"<th>{_e(_ALL_CLUSTER_COLUMNS[c][0])}</th>" for c in cols)
    rows = []
    for _, row in r.iterrows():
        cells = "".join(
            f"<td class='num'>{_e(_ALL_CLUSTER_COLUMNS[c][1](row[c]))}</td>" for c in cols
        )
        cls = " class='risky'" if row["risky"] else ""
        rows.append(f"<tr{cls}>{cells}</tr>")
    note = f"<p class='meta'>largest {len(r)} of {len(risk)} rows</p>" if len(risk) > top else ""
    return f"{note}<div class='wide'><table><tr>{head}</tr>{''.join(rows)}</table></div>"


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
    risky_ids = [int(c) for c in ctx.risk.loc[ctx.risk["risky"], "cluster"]]
    created = ctx.created_at or dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    kpis = "".join(f"<div class='kpi'><b>{_e(v)}</b>{_e(k)}</div>" for k, v in _kpis(ctx).items())

    figs = []
    if ctx.X is not None and ctx.labels is not None and len(ctx.X) == len(ctx.labels):
        figs.append(_try_img(
            lambda: plots.projection(ctx.X, ctx.labels, risky_ids, ctx.sample_size),
            "2-D PCA projection of the hybrid vectors, by cluster"))  # fmt: skip
    figs.append(_try_img(lambda: plots.cluster_sizes(ctx.risk), "Cluster sizes"))
    if (ctx.risk["n_labelled"] > 0).any():
        figs.append(_try_img(
            lambda: plots.fraud_rates(ctx.risk, _base_rate(ctx.risk)),
            "Fraud rate per cluster where labels exist"))  # fmt: skip
    if ctx.ts is not None and ctx.labels is not None and len(ctx.ts) == len(ctx.labels):
        figs.append(_try_img(lambda: plots.timeline(ctx.ts, ctx.labels, risky_ids), "Timeline"))
    if len(ctx.losses):
        figs.append(_try_img(lambda: plots.loss_curve(ctx.losses), "Training loss per epoch"))

    missed = ""
    if ctx.missed is not None and len(ctx.missed):
        by = ctx.missed.groupby("cluster")
        agg = by.size().rename("n").to_frame()
        if "amount" in ctx.missed:
            agg["amount"] = by["amount"].sum()
        rows = "".join(
            f"<tr><td>{_e(c)}</td>"
            + "".join(f"<td class='num'>{_e(_fmt(v))}</td>" for v in r)
            + "</tr>"
            for c, r in zip(agg.index, agg.itertuples(index=False), strict=True)
        )
        head = "".join(f"<th>{_e(c)}</th>" for c in ["cluster", *agg.columns])
        missed = (
            "<h2>Missed fraud in risky clusters</h2><p>Confirmed fraud the real-time engine "
            f"approved, inside clusters flagged risky.</p><table><tr>{head}</tr>{rows}</table>"
        )

    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(ctx.title)} - {_e(ctx.run_id)}</title><style>{_CSS}</style></head>
<body>
<h1>{_e(ctx.title)}</h1>
<p class="meta">run <code>{_e(ctx.run_id)}</code> · generated {_e(created)}</p>
<div class="kpis">{kpis}</div>
<h2>Risky clusters</h2>
{_risky_table(ctx)}
{missed}
<h2>Flagged transactions, by reason</h2>
{_flags_html(ctx.flags)}
<h2>Figures</h2>
<div class="grid">{"".join(figs)}</div>
<h2>All clusters</h2>
{_all_clusters_table(ctx.risk)}
<h2>Quality metrics</h2>
{_kv_table(ctx.metrics)}
<h2>Parameters</h2>
{_kv_table(ctx.params)}
</body></html>
"""


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
    order = risky.assign(
        _o=risky["wilson_lower"].fillna(0) + risky["coordination_score"].fillna(0)
    ).sort_values("_o", ascending=False)
    for _, r in order.head(max_rows).iterrows():
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
