"""Report: the investigator's page, the run summary, a Prefect artifact and MLflow artifacts."""

from __future__ import annotations

from typing import Any

import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact

from catalog.datasets import Catalog
from infra.tracking import RunLogger
from ops.report import ReportContext, render_markdown_summary, render_report
from ops.risk import Rule
from tasks.io import log_dataset
from tasks.risk import transactions_view


@task(name="report")
def report(
    output_root: str,
    run_id: str,
    losses: list[float],
    params: dict[str, Any],
    published_as: str | None = None,
) -> dict[str, Any]:
    """``published_as``: where the outputs will be read, when built elsewhere (a staging area)."""
    catalog = Catalog(output_root)
    # what the page and the summary read of each transaction, not the whole view
    view = transactions_view(catalog, transaction_columns=["ts"], behaviour=False)
    risk = catalog.load_frame("risk")
    metrics = catalog.load_json("metrics")
    rules_doc = catalog.load_json("rules")
    flags = catalog.load_json("flags")
    counts = catalog.load_json("ingest_counts")
    _, hybrid = catalog.load_vectors("hybrid")
    rules = {c["cluster"]: [Rule.from_dict(r) for r in c["rules"]] for c in rules_doc["clusters"]}
    context = ReportContext(
        run_id=run_id,
        risk=risk,
        labels=view["cluster"].to_numpy(),
        X=hybrid,
        ts=view["ts"],
        losses=losses,
        rules=rules,
        narratives={c["cluster"]: c["narrative"] for c in rules_doc["clusters"]},
        params=params,
        metrics=metrics,
        missed=catalog.load_frame("missed"),
        flags=flags,
    )
    catalog.save_text("report", render_report(context))
    summary = {
        "run_id": run_id,
        "output": published_as or output_root,
        "ingest": counts,
        "n_transactions": len(view),
        "n_clusters": int((risk["cluster"] >= 0).sum()),
        "noise_share": float((view["cluster"] < 0).mean()),
        "metrics": metrics,
        "flags": flags,
        "risky_clusters": [
            {
                "cluster": c["cluster"],
                "size": int(risk.loc[risk["cluster"] == c["cluster"], "size"].iloc[0]),
                "reason": c["risk_reason"],
                "basis": _basis(risk.loc[risk["cluster"] == c["cluster"]].iloc[0]),
                "narrative": c["narrative"],
                "rules": [r["text"] for r in c["rules"]],
            }
            for c in rules_doc["clusters"]
        ],
    }
    catalog.save_json("summary", summary)
    create_markdown_artifact(
        render_markdown_summary(context), key="shoal-report", description="Shoal run summary"
    )
    tracker = RunLogger(run_id)
    for name in ("report", "summary"):
        log_dataset(tracker, catalog, name, "outputs")
    return summary


def _basis(row: pd.Series) -> str:
    """The short form of why a cluster is risky, for tables."""
    parts = []
    if row["label_flag"]:
        parts.append(f"labels: {row['fraud_rate']:.0%} fraud of {int(row['n_labelled'])}")
    if row["coordination_flag"]:
        parts.append(f"coordination {row['coordination_score']:.2f}")
    if row["sibling_flag"]:
        parts.append(f"with siblings {', '.join(str(c) for c in row['pool_clusters'])}")
    return "; ".join(parts)
