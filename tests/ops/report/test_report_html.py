"""The report is one self-contained, escaped HTML page; the digest is Markdown."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ops.report import ReportContext, render_markdown_summary, render_report
from ops.risk import assess_risk, extract_all_rules, missed_fraud
from tests.chromium import needs_chromium, render

EVIL = "<script>alert('x')</script>"


@pytest.fixture(scope="module")
def ctx() -> ReportContext:
    rng = np.random.default_rng(0)
    n = 600
    labels = rng.integers(-1, 5, n)
    ring = labels == 4
    X = rng.normal(size=(n, 6)) + labels[:, None] * 2.0
    ts = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(
        np.where(ring, rng.uniform(0, 3600, n), rng.uniform(0, 7 * 86400, n)), unit="s"
    )
    df = pd.DataFrame(
        {
            "cluster": labels,
            "label": np.where(rng.random(n) < 0.5, (ring | (rng.random(n) < 0.02)) * 1.0, np.nan),
            "ts": ts,
            "median_dwell": np.where(ring, 0.3, rng.uniform(3, 20, n)),
            "dwell_cv": np.where(ring, 0.1, 1.0),
            "decision": "approved",
            "amount": rng.uniform(1, 500, n).round(2),
        }
    )
    features = pd.DataFrame(
        {
            "amount": df["amount"],
            "card_country": np.where(ring, EVIL, rng.choice(["US", "GB"], n)),
        }
    )
    risk = assess_risk(df)
    risky = risk.loc[risk["risky"], "cluster"].tolist()
    rules = extract_all_rules(features, labels, risky)
    return ReportContext(
        run_id="run-42",
        risk=risk,
        labels=labels,
        X=X,
        ts=ts,
        losses=[2.0, 1.2, 0.9, 0.8],
        rules=rules,
        narratives={4: f"ring of {EVIL}"},
        params={"min_cluster_size": 25, "note": EVIL},
        metrics={"silhouette": 0.41, "dbcv": 0.22},
        missed=missed_fraud(df, risk),
    )


@pytest.fixture(scope="module")
def page(ctx: ReportContext) -> str:
    return render_report(ctx)


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.srcs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.srcs += [v or "" for k, v in attrs if k in ("src", "href")]


def test_report_is_self_contained_html(ctx: ReportContext, page: str) -> None:
    assert bool(ctx.risk.set_index("cluster").loc[4, "risky"])
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    parser = _Collector()
    parser.feed(page)
    assert {"html", "head", "body", "table", "img"} <= set(parser.tags)
    assert "script" not in parser.tags
    assert not re.search(r"https?://", page)
    # projection, sizes, fraud rate, timeline, loss curve
    assert len(parser.srcs) == 5
    for src in parser.srcs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "run-42" in page and "not drawn" not in page


def test_report_escapes_text(page: str) -> None:
    assert EVIL not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert "ring of &lt;script&gt;" in page  # narrative
    assert "card country is &lt;script&gt;" in page  # a rule on an attacker-set value


def test_markup_and_quotes_in_page_names_and_feature_values_come_out_as_text(
    ctx: ReportContext,
) -> None:
    """No markup from the data survives as markup.

    Page names (the narrative), feature values (a rule, the reason), parameters, the title
    and a figure's error all carry markup and both quotes.
    """
    evil = """<script>alert("x")</script><img src=x onerror='alert(1)'>"""
    risk = ctx.risk.copy()
    risk["risk_reason"] = risk["risk_reason"].astype(str) + evil
    hostile = ReportContext(
        run_id=f"run {evil}",
        risk=risk,
        losses=["not a number"],  # the loss figure fails; its error message is data too
        rules=ctx.rules,
        narratives={4: f"pages home > {evil} > pay"},
        params={f"key {evil}": evil},
        metrics={"note": evil},
        title=f"report {evil}",
    )
    page = render_report(hostile)
    parser = _Collector()
    parser.feed(page)
    assert "script" not in parser.tags and parser.tags.count("img") == 2  # sizes, fraud rates
    assert evil not in page and "onerror='" not in page and '"x"' not in page
    escaped = (
        "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"
        "&lt;img src=x onerror=&#39;alert(1)&#39;&gt;"
    )
    assert page.count(escaped) >= 7  # title twice, run id, reason, narrative, param key and value
    assert "not drawn" in page


def test_report_without_optional_parts(ctx: ReportContext) -> None:
    bare = ReportContext(run_id="r", risk=ctx.risk.assign(risky=False, n_labelled=0))
    page = render_report(bare)
    assert "No cluster was flagged risky" in page
    assert page.count("data:image/png;base64,") == 1  # sizes only


def test_markdown_summary(ctx: ReportContext) -> None:
    md = render_markdown_summary(ctx)
    assert md.startswith("# Shoal run report")
    assert "| cluster | size |" in md
    assert re.search(r"^\| 4 \| ", md, flags=re.M)
    assert EVIL not in md and "&lt;script&gt;" in md
    assert "**dbcv**: 0.22" in md


def test_base_rate_recomputed_without_attrs(ctx: ReportContext) -> None:
    risk = ctx.risk.copy()
    risk.attrs = {}  # as after a Parquet round-trip that drops attrs
    expected = risk["n_fraud"].sum() / risk["n_labelled"].sum()
    md = render_markdown_summary(ReportContext(run_id="r", risk=risk))
    assert f"**base fraud rate**: {expected:.2%}" in md


@needs_chromium
def test_report_renders_in_headless_chromium(page: str, tmp_path: Path) -> None:
    """A real browser: no script error, the tables and images in the DOM, a page not blank."""
    report = tmp_path / "report.html"
    report.write_text(page, encoding="utf-8")
    dom, log, pixels = render(report, tmp_path / "report.png")
    assert "Uncaught" not in log and "SyntaxError" not in log, log
    assert "Risky clusters" in dom and dom.count("<img") == 5
    assert "run-42" in dom
    assert pixels.shape[:2] == (1600, 1280)
    assert pixels.std() > 0.05, "the page rendered blank"
