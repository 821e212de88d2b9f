"""How far the content-blind rings can be told apart one session at a time.

The dwell fit against the best test there is, on a finished run.

A content-blind bot (shop ``rhythm_bot``, marketplace ``shuffled_replay``) keeps a shopper's
pages and delays and only shuffles which page each delay is spent on. Whatever a clusterer or
a rule does, a region of transactions can be no purer than the best per-session test allows.
That test, under the generators' own dwell model (log dwell = page's typical + session pace
+ noise), is the likelihood ratio of the observed pairing against a random shuffle of it,
estimated here with ``--permutations`` shuffles per session (the "oracle"). Printed per
world: AUC against normal shoppers, and the precision (against all other traffic) of the most
shuffled-looking sessions that hold ``k`` ring members, for `ops.features`' dwell statistics and
the oracle. Truth is read only to score.

    .venv/bin/python benchmarks/dwell_fit_ceiling.py --run <shop run> --generator shop
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import logsumexp
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RING = {"shop": "rhythm_bot", "marketplace": "shuffled_replay"}
#: The generators' per-step spread of log dwell around a page's typical (`human_gaps` sigma).
SIGMA = {"shop": 0.8, "marketplace": 0.9}
TOP = (5, 10, 25, 50, 100, 200)


def oracle(
    tokens: list[np.ndarray], dwell: list[np.ndarray], typical: np.ndarray, sigma: float, k: int
) -> np.ndarray:
    """Log likelihood ratio "shuffled" over "as observed" per session (pace profiled out)."""
    from ops.features import MIN_DWELL_S

    rng = np.random.default_rng(0)
    out = np.zeros(len(tokens))
    for i, (t, d) in enumerate(zip(tokens, dwell, strict=True)):
        x = np.log(np.maximum(np.asarray(d[1:], dtype=float), MIN_DWELL_S))
        page = typical[np.asarray(t[:-1])]
        if len(x) < 2:
            continue

        def loglik(p: np.ndarray, x: np.ndarray = x) -> np.ndarray:
            r = x - p
            r = r - r.mean(axis=-1, keepdims=True)
            return -(r**2).sum(axis=-1) / (2 * sigma**2)

        shuffled = page[np.argsort(rng.random((k, len(x))), axis=1)]
        out[i] = logsumexp(loglik(shuffled)) - np.log(k) - loglik(page)
    return out


def top_precision(score: np.ndarray, ring: np.ndarray) -> str:
    hits = np.cumsum(ring[np.argsort(-score, kind="stable")])
    return " ".join(f"{k}:{k / (np.searchsorted(hits, k) + 1):.2f}" for k in TOP)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, required=True, help="a finished run's output folder")
    ap.add_argument("--generator", choices=sorted(RING), required=True)
    ap.add_argument("--truth", type=Path, help="truth.parquet (default: from the run lineage)")
    ap.add_argument("--permutations", type=int, default=300)
    args = ap.parse_args()
    from catalog.datasets import Catalog
    from ops.features import PageDwell, dwell_fit, fit_page_dwell
    from ops.ingest import FIRST_TOKEN
    from tasks.io import load_sequences

    catalog = Catalog(str(args.run))
    truth_path = args.truth or (
        Path(catalog.load_json("lineage")["inputs"]["events"]["uri"]).parent / "truth.parquet"
    )
    txn_ids, tokens, dwell = load_sequences(str(args.run))
    vocabulary = catalog.load_json("vocabulary")
    pattern = pd.read_parquet(truth_path).set_index("txn_id").loc[txn_ids, "pattern"].to_numpy()
    ring, normal = pattern == RING[args.generator], pattern == "normal"
    try:
        table = PageDwell.from_dict(catalog.load_json("page_dwell"))
    except FileNotFoundError:  # a run from before the table existed
        table = fit_page_dwell(tokens, dwell, vocabulary)
    fit = dwell_fit(table, tokens, dwell, vocabulary)
    typical = np.full(FIRST_TOKEN + len(vocabulary), table.default)
    typical[FIRST_TOKEN:] = [table.typical.get(v, table.default) for v in vocabulary]
    scores = {
        "-dwell_page_fit": -fit["dwell_page_fit"].to_numpy(),
        "dwell_off_page": fit["dwell_off_page"].to_numpy(),
        "oracle": oracle(tokens, dwell, typical, SIGMA[args.generator], args.permutations),
    }
    both = ring | normal
    print(f"{args.generator}: {ring.sum()} {RING[args.generator]} among {len(ring):,} sessions")
    print("precision of the top sessions holding k ring members (k:precision)")
    for name, s in scores.items():
        auc = roc_auc_score(ring[both], s[both])
        print(f"  {name:16s} AUC {auc:.3f}  {top_precision(s, ring)}")


if __name__ == "__main__":
    main()
