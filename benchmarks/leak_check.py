"""Leak check at the demo's size: the whole flow N times back to back in one process.

After each run (garbage collected, Ray's exiting workers settled) it records the open file
descriptors, child processes and resident memory of this process, then prints the table and
each measure's growth from run 2 (run 1 warms up imports, caches, Ray and Prefect) to the last.
Exits 1 when a measure grew past its tolerance (``infra.usage.LEAK_TOLERANCE``, as in the test).

    .venv/bin/python benchmarks/leak_check.py                       # 5 runs of the 50k demo
    .venv/bin/python benchmarks/leak_check.py --transactions 2000 --runs 3 --epochs 1
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra.settings import configure_environment


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=None, help="default: the flow's own")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    configure_environment()
    from flows.demo import demo_data
    from flows.fraud_clustering import fraud_clustering
    from flows.params import PipelineParams
    from infra.usage import LEAK_TOLERANCE, growth, process_usage

    params = PipelineParams()
    if args.epochs is not None:
        params = params.model_copy(
            update={"pretrain": params.pretrain.model_copy(update={"epochs": args.epochs})}
        )
    data = demo_data(args.transactions, args.seed)
    print(f"{args.runs} runs of fraud_clustering on {args.transactions:,} transactions")
    print(f"before: {process_usage()}")
    samples = []
    for run in range(1, args.runs + 1):
        started = time.perf_counter()
        fraud_clustering(str(data.events), str(data.transactions), params=params)
        samples.append(process_usage())
        print(f"run {run}: {samples[-1]}  ({time.perf_counter() - started:.0f} s)", flush=True)
    grown = growth(samples)
    failed = False
    for key, limit in LEAK_TOLERANCE.items():
        verdict = "ok" if grown[key] <= limit else "GREW"
        failed |= verdict != "ok"
        print(f"growth run 2 -> {args.runs}: {key} {grown[key]:+.1f} (tolerance {limit}) {verdict}")
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
