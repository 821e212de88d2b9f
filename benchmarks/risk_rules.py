"""Risk, rules and flags against the planted truth, per ring, on the synthetic worlds.

For each generator the demo flow runs on 50k transactions (or a finished run is reused), then
the truth is read and, per planted pattern, printed: how its risky clusters were flagged (by
labels, by coordination), the share of the ring inside risky clusters and the purity of those
clusters, and how the *rules* of those clusters do when applied to every transaction of the
window, as a real-time engine would (no cluster id needed): precision against the ring itself
and against fraud of any kind, and recall. See `ops.evaluation.ring_rule_scores`. Then the
share of each pattern flagged (``risky`` in ``clusters.parquet``) by reason (cluster,
branch, membership, rule, neighbours), the precision of the whole flagged set, and the
membership threshold and neighbour-vote thresholds the run calibrated.

    .venv/bin/python benchmarks/risk_rules.py                        # both worlds, runs the flow
    .venv/bin/python benchmarks/risk_rules.py --generator shop --run .shoal/runs/<run id>
    .venv/bin/python benchmarks/risk_rules.py --generator shop --run <dir> --compare

``--compare`` re-learns the rules of the finished run with the rule learner of before
(each risky cluster against all other traffic, transaction features only) and with today's
(alike clusters grouped, session statistics allowed), on the same clusters: the difference
is the learner's alone. ``--transactions``/``--seed`` pick the demo data (default 50k, 0);
``--config`` a YAML of pipeline parameters (as ``shoal run --config``) for the flow runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra.settings import configure_environment

COLUMNS = {
    "pattern": "pattern",
    "n": "n",
    "n_clusters": "clusters",
    "by_labels": "by labels",
    "by_coordination": "by coord.",
    "recall": "in risky",
    "recall_by_coordination": "in coord.",
    "precision": "purity",
    "n_with_rules": "w/ rules",
    "rule_precision": "rule prec. (ring)",
    "rule_fraud_precision": "rule prec. (fraud)",
    "rule_recall": "rule recall",
}


def learned_rules(run: Path, *, legacy: bool) -> dict[int, list[Any]]:
    """Re-learn a finished run's rules with the old or the new learner."""
    from catalog.datasets import Catalog
    from ops.features import FeatureSpec
    from ops.risk import extract_all_rules
    from tasks.explain import SESSION_COLUMNS
    from tasks.risk import transactions_view

    catalog = Catalog(str(run))
    view = transactions_view(catalog)
    risk = catalog.load_frame("risk")
    spec = FeatureSpec.from_dict(catalog.load_json("feature_spec"))
    columns = [c.name for c in spec.columns if c.kind != "frequency"]
    if not legacy:
        columns += [c for c in SESSION_COLUMNS if c in view]
    risky = [int(c) for c in risk.loc[risk["risky"], "cluster"]]
    depth = 3 if legacy else 4  # the old default, and the new one for group rules
    return extract_all_rules(
        view[columns], view["cluster"].to_numpy(), risky, group=not legacy, max_depth=depth
    )


def saved_rules(run: Path) -> dict[int, list[Any]]:
    """Read the rules a finished run wrote, by risky cluster."""
    from catalog.datasets import Catalog
    from ops.risk import Rule

    doc = Catalog(str(run)).load_json("rules")
    return {c["cluster"]: [Rule.from_dict(r) for r in c["rules"]] for c in doc["clusters"]}


def score(run: Path, truth_path: Path, rules: dict[int, list[Any]]) -> pd.DataFrame:
    """Per-pattern table of `ring_rule_scores`, plus an "all rings" row in ``attrs``."""
    from catalog.datasets import Catalog
    from ops.evaluation import ring_rule_scores
    from tasks.risk import transactions_view

    catalog = Catalog(str(run))
    view = transactions_view(catalog)
    risk = catalog.load_frame("risk")
    truth = pd.read_parquet(truth_path).set_index("txn_id").loc[view["txn_id"]]
    pattern = truth["pattern"].where(truth["pattern"] != "normal")
    fraud = truth["is_fraud"].to_numpy(dtype=bool)
    hits = {}
    for c, rs in rules.items():
        m = np.zeros(len(view), dtype=bool)
        for r in rs:
            m |= r.mask(view)
        hits[c] = m
    table = ring_rule_scores(view["cluster"].to_numpy(), risk, hits, pattern, fraud)
    every = np.logical_or.reduce(list(hits.values())) if hits else np.zeros(len(view), bool)
    ring = pattern.notna().to_numpy() & (pattern != "scattered_fraud").to_numpy()
    table.attrs.update(
        n_transactions=len(view),
        n_clusters=int((risk["cluster"] >= 0).sum()),
        n_risky=int(risk["risky"].sum()),
        noise_share=float((view["cluster"] < 0).mean()),
        n_rules=len({r for rs in rules.values() for r in rs}),
        n_groups=len({r.clusters for rs in rules.values() for r in rs}),
        all_rules_precision=float(fraud[every].mean()) if every.any() else float("nan"),
        all_rules_ring_recall=float((every & ring).sum() / max(ring.sum(), 1)),
    )
    return table


def flag_scores(run: Path, truth_path: Path) -> pd.DataFrame:
    """Per planted pattern: the share flagged (``risky`` in ``clusters.parquet``), by reason.

    ``attrs`` holds the precision of the whole flagged set (share that is fraud of any
    pattern), overall and per reason, the per-reason counts, and the run's membership
    calibration (threshold, and its precision and count over the labelled candidates).
    """
    from catalog.datasets import Catalog
    from ops.risk import FLAG_REASONS

    catalog = Catalog(str(run))
    clusters = catalog.load_frame("clusters")
    flags = catalog.load_json("flags")
    calibration = flags["membership"]
    truth = pd.read_parquet(truth_path).set_index("txn_id").loc[clusters["txn_id"]]
    pattern = truth["pattern"].to_numpy()
    fraud = truth["is_fraud"].to_numpy(dtype=bool)
    risky = clusters["risky"].to_numpy(dtype=bool)
    reason = clusters["flag_reason"].to_numpy(dtype=object)
    rows = []
    for name in pd.unique(pattern):
        mine = pattern == name
        row = {"pattern": name, "n": int(mine.sum()), "flagged": float(risky[mine].mean())}
        row.update({f"by {r}": float((reason[mine] == r).mean()) for r in FLAG_REASONS})
        rows.append(row)
    table = pd.DataFrame(rows).sort_values("n", ascending=False, kind="stable")
    table.attrs.update(
        n_flagged=int(risky.sum()),
        precision=float(fraud[risky].mean()) if risky.any() else float("nan"),
        **{f"n_{r}": int((reason == r).sum()) for r in FLAG_REASONS},
        **{
            f"precision_{r}": float(fraud[reason == r].mean()) if (reason == r).any() else np.nan
            for r in FLAG_REASONS
        },
        membership_threshold=calibration["threshold"],
        membership_calibrated=calibration["calibrated"],
        neighbour_thresholds=[
            r["threshold"] for r in flags.get("neighbours", {}).get("rounds", [])
        ],
        membership_labelled=[
            (row["precision"], row["n_labelled"])
            for row in calibration["table"]
            if row["threshold"] == calibration["threshold"]
        ],
    )
    return table


def show_flags(title: str, table: pd.DataFrame) -> None:
    """Print `flag_scores`: overall and per-reason precision, membership and vote thresholds."""
    from ops.risk import FLAG_REASONS

    a = table.attrs
    print(f"\n== {title}")
    per_reason = ", ".join(
        f"{r} {a[f'n_{r}']:,} (precision {a[f'precision_{r}']:.3f})" for r in FLAG_REASONS
    )
    print(f"{a['n_flagged']:,} flagged, precision (fraud) {a['precision']:.3f}: {per_reason}")
    labelled = "".join(
        f", labelled precision {p:.3f} over {n}" for p, n in a["membership_labelled"] if n
    )
    calibrated = "calibrated" if a["membership_calibrated"] else "fallback"
    threshold = a["membership_threshold"]  # None: the labels allow no precise threshold
    shown = "none" if threshold is None else threshold
    print(f"membership threshold {shown} ({calibrated}{labelled})")
    print(f"neighbour vote thresholds by round: {a['neighbour_thresholds']}")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def show(title: str, table: pd.DataFrame) -> None:
    """Print `score`'s table with its totals."""
    a = table.attrs
    print(f"\n== {title}")
    print(
        f"{a['n_transactions']:,} transactions, {a['n_clusters']} clusters "
        f"({100 * a['noise_share']:.1f}% noise), {a['n_risky']} risky; {a['n_rules']} rules "
        f"in {a['n_groups']} groups. All rules together: precision (fraud) "
        f"{a['all_rules_precision']:.3f}, recall of ring transactions "
        f"{a['all_rules_ring_recall']:.3f}"
    )
    out = table[list(COLUMNS)].rename(columns=COLUMNS)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(out.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def main() -> None:
    """Run the flows (or read ``--run``) and print the tables."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--generator", choices=["shop", "marketplace", "travel", "both"], default="both"
    )
    ap.add_argument("--run", type=Path, help="a finished run's output folder (one generator)")
    ap.add_argument("--transactions", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compare", action="store_true", help="old vs new learner on --run")
    ap.add_argument("--config", type=Path, help="pipeline parameters (YAML) for the flow runs")
    args = ap.parse_args()
    if args.run and args.generator == "both":
        ap.error("--run needs one --generator")
    configure_environment()
    from flows.demo import demo_data, run_demo
    from flows.params import PipelineParams

    params = PipelineParams.from_yaml(args.config) if args.config else None

    generators = ["shop", "marketplace"] if args.generator == "both" else [args.generator]
    for gen in generators:
        truth = demo_data(args.transactions, args.seed, gen).truth
        run = args.run
        if run is None:
            start = time.perf_counter()
            summary, _ = run_demo(args.transactions, args.seed, params, generator=gen)
            run = Path(summary["output"])
            print(f"\n{gen}: flow ran in {time.perf_counter() - start:.0f} s, outputs in {run}")
        show(f"{gen}: rules of the run ({run.name})", score(run, truth, saved_rules(run)))
        show_flags(f"{gen}: flagged transactions ({run.name})", flag_scores(run, truth))
        if args.compare:
            for legacy, name in ((True, "before: cluster vs rest"), (False, "now: grouped")):
                start = time.perf_counter()
                rules = learned_rules(run, legacy=legacy)
                took = time.perf_counter() - start
                show(f"{gen}: {name}, re-learned in {took:.0f} s", score(run, truth, rules))


if __name__ == "__main__":
    main()
