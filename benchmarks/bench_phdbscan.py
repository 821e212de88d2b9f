"""Time PHDBSCAN against hdbscan, fast-hdbscan and scikit-learn's HDBSCAN in one run.

Every method runs in its own spawned process on the same ``make_blobs`` data (20 centres by
default), so wall time and peak RSS (``resource.ru_maxrss``, which -- unlike tracemalloc --
sees FAISS's C++ buffers) are per method. ARI is reported against hdbscan when it ran, else
against ``PHDBSCAN(mode="exact")``.

Example::

    python benchmarks/bench_phdbscan.py --sizes 20000 50000 --dims 32
    python benchmarks/bench_phdbscan.py --sizes 1000000 --methods phdbscan_auto --skip-slow-refs

Parameters follow hdbscan's conventions: ``min_samples`` excludes the point itself, so
scikit-learn is given ``min_samples + 1`` (hdbscan.md point 2).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ALL_METHODS = ("phdbscan_auto", "phdbscan_exact", "hdbscan", "fast_hdbscan", "sklearn")
SLOW = ("hdbscan", "sklearn")


def make_data(n: int, d: int, centers: int, seed: int) -> np.ndarray:
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(n, d, centers=centers, random_state=seed)
    return X.astype(np.float32)


def run_method(method: str, X: np.ndarray, mcs: int, ms: int, extra: dict[str, Any]) -> Any:
    """Fit one method and return ``(labels, info)``."""
    warnings.filterwarnings("ignore")
    info: dict[str, Any] = {}
    if method.startswith("phdbscan"):
        sys.path.insert(0, str(ROOT))
        from ops.phdbscan import PHDBSCAN

        mode = "exact" if method == "phdbscan_exact" else "auto"
        model = PHDBSCAN(min_cluster_size=mcs, min_samples=ms, mode=mode, **extra).fit(X)
        info = {"mode": model.mode_, "knn": model.knn_backend_}
        return model.labels_, info
    if method == "hdbscan":
        import hdbscan

        return hdbscan.HDBSCAN(min_cluster_size=mcs, min_samples=ms, core_dist_n_jobs=-1).fit(
            X.astype(np.float64)
        ).labels_, info
    if method == "fast_hdbscan":
        import fast_hdbscan

        # fast-hdbscan 0.3.x sends d > 30 without weights to pynndescent (an optional extra);
        # unit weights keep it on its exact kd-tree Borůvka path
        model = fast_hdbscan.HDBSCAN(min_cluster_size=mcs, min_samples=ms)
        return model.fit(X, sample_weight=np.ones(len(X), np.float32)).labels_, info
    if method == "sklearn":
        from sklearn.cluster import HDBSCAN

        return HDBSCAN(min_cluster_size=mcs, min_samples=ms + 1).fit(X).labels_, info
    raise ValueError(method)


def _child(method: str, args: argparse.Namespace, n: int, queue: Any) -> None:
    X = make_data(n, args.dims, args.centers, args.seed)
    extra = {"device": args.device}
    if method.startswith("phdbscan") and args.knn_backend:
        extra["knn_backend"] = args.knn_backend
    if method == "fast_hdbscan":  # numba JIT on a tiny input first; compile time is not fit time
        run_method(method, X[:2000], args.min_cluster_size, args.min_samples, extra)
    t0 = time.perf_counter()
    labels, info = run_method(method, X, args.min_cluster_size, args.min_samples, extra)
    elapsed = time.perf_counter() - t0
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    queue.put((elapsed, peak_gb, np.asarray(labels, np.int32), info))


def timed(method: str, args: argparse.Namespace, n: int) -> dict[str, Any] | None:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(method, args, n, queue))
    proc.start()
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            elapsed, peak, labels, info = queue.get(timeout=5)
            break
        except Exception:  # still running, crashed or out of time
            if not proc.is_alive() or time.monotonic() > deadline:
                proc.kill()
                proc.join()
                return None
    proc.join()
    return {"time": elapsed, "peak_gb": peak, "labels": labels, **info}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 50_000])
    parser.add_argument("--dims", type=int, default=32)
    parser.add_argument("--centers", type=int, default=20)
    parser.add_argument("--min-cluster-size", type=int, default=50)
    parser.add_argument("--min-samples", type=int, default=None, help="default: min cluster size")
    parser.add_argument("--methods", nargs="+", choices=ALL_METHODS, default=list(ALL_METHODS))
    parser.add_argument(
        "--skip-slow-refs",
        action="store_true",
        help="skip hdbscan and scikit-learn above --slow-ref-max-n rows",
    )
    parser.add_argument("--slow-ref-max-n", type=int, default=50_000)
    parser.add_argument("--device", default="auto", help="PHDBSCAN device (auto/cpu/cuda)")
    parser.add_argument("--knn-backend", default=None, help="force a PHDBSCAN kNN backend")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per method")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.min_samples = args.min_samples or args.min_cluster_size

    from sklearn.metrics import adjusted_rand_score

    print(
        f"# blobs: centers={args.centers} d={args.dims} min_cluster_size={args.min_cluster_size}"
        f" min_samples={args.min_samples}"
    )
    header = f"{'n':>9} {'method':<15} {'time_s':>9} {'peak_GB':>8} {'x_hdbscan':>9}"
    header += f" {'x_fast':>7} {'ARI_ref':>8} {'K':>4} {'noise%':>7}  note"
    print(header, flush=True)
    for n in args.sizes:
        results: dict[str, dict[str, Any] | None] = {}
        for method in args.methods:
            if args.skip_slow_refs and method in SLOW and n > args.slow_ref_max_n:
                continue
            results[method] = timed(method, args, n)
        ref_name = "hdbscan" if results.get("hdbscan") else "phdbscan_exact"
        ref = results.get(ref_name)
        for method, res in results.items():
            if res is None:
                print(f"{n:>9} {method:<15} {'timeout/err':>9}", flush=True)
                continue
            ratio_h = results["hdbscan"]["time"] / res["time"] if results.get("hdbscan") else None
            ratio_f = (
                results["fast_hdbscan"]["time"] / res["time"]
                if results.get("fast_hdbscan")
                else None
            )
            ari = adjusted_rand_score(ref["labels"], res["labels"]) if ref else None
            labels = res["labels"]
            note = " ".join(f"{k}={res[k]}" for k in ("mode", "knn") if k in res)
            if ref and method != ref_name:
                note += f" (ARI vs {ref_name})"

            def fmt(v: float | None, spec: str) -> str:
                return format(v, spec) if v is not None else "-"

            print(
                f"{n:>9} {method:<15} {res['time']:>9.2f} {res['peak_gb']:>8.2f}"
                f" {fmt(ratio_h, '>9.1f')} {fmt(ratio_f, '>7.1f')} {fmt(ari, '>8.4f')}"
                f" {int(labels.max()) + 1:>4} {100 * np.mean(labels < 0):>7.2f}  {note}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
