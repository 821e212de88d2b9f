"""pHDBSCAN's CPU kNN graph in one process against the same chunks as Ray tasks.

Times ``cell_knn`` (the graph ``PHDBSCAN`` builds without a GPU) on blobs, in both modes,
with the default map (a thread pool in this process) and with ``infra.ray.ray_map`` on a
local Ray of ``--cpus`` CPUs, whose workers are started before the clock runs; checks that
the graphs are equal to the bit. Prints the load average beside the figures::

    .venv/bin/python benchmarks/bench_knn_tasks.py --n 100000 --dims 32
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import ray
from sklearn.datasets import make_blobs

from infra.ray import ray_map
from ops.phdbscan._knn_graph import cell_knn
from ops.phdbscan._mst import default_graph_k


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; 1 if a graph built through Ray differs from the process's."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=32)
    parser.add_argument("--min-samples", type=int, default=50)
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    X, _ = make_blobs(args.n, args.dims, centers=20, random_state=0)
    X = X.astype(np.float32)
    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False)
    ray_map(abs, range(args.cpus))  # start the workers outside the timings
    cell_knn(X[:5000], 8)  # compile and load outside the timings
    ms, differ = args.min_samples, False
    print(f"# blobs n={args.n} d={args.dims} min_samples={ms}; local Ray of {args.cpus} CPUs")
    for mode, exact, k in [
        ("approximate", False, ms + 1),
        ("exact", True, default_graph_k(ms, args.n) + 1),
    ]:
        graphs = {}
        for name, map_chunks in [("process", None), ("ray_tasks", ray_map)]:
            started = time.perf_counter()
            graphs[name] = cell_knn(X, k, exact=exact, map_chunks=map_chunks)
            seconds = time.perf_counter() - started
            load = os.getloadavg()[0]
            print(f"{mode:12s} k={k:3d} {name:10s} {seconds:7.2f} s   load average {load:.1f}")
        same = all(np.array_equal(a, b) for a, b in zip(*graphs.values(), strict=True))
        print(f"{mode:12s} graphs equal to the bit: {same}")
        differ |= not same
    ray.shutdown()
    return int(differ)


if __name__ == "__main__":
    raise SystemExit(main())
