"""Ingest at lake scale: 10M events of 600k transactions from Parquet, checked and sessionized.

Each measurement runs in its own process and the parent samples the RSS of that process and
all its children (Dask workers included) every 50 ms, so "peak" is what the machine gave it.

    .venv/bin/python benchmarks/bench_ingest.py --workdir /tmp/b10m   # generate once, every mode
    .venv/bin/python benchmarks/bench_ingest.py --events 1000000 --transactions 60000

Modes: ``dask`` (``tasks.ingest.run_ingest``, what ``shoal ingest`` runs: transactions checked
in memory, events checked and sessionized out of core on Dask's threaded scheduler),
``pandas`` (the naive read-everything + ``groupby(...).agg(list)``, no checks), and
``dask-limited`` (the same ``run_ingest`` on a ``LocalCluster`` of one worker process whose
memory limit is ``--limit-fraction`` of the events' Arrow size, with pieces, lookups and
partitions scaled to it). Figures and what limits ``dask-limited``: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PAGES = [f"page_{i:02d}" for i in range(60)]


def generate(folder: Path, n_events: int, n_txns: int, files: int, seed: int = 0) -> None:
    """Write ``files`` Parquet files of events and one of transactions.

    Each events file holds events of any transaction, so the shuffle is real; built from numpy
    and Arrow, with no Python loop per row.
    """
    rng = np.random.default_rng(seed)
    (folder / "events").mkdir(parents=True, exist_ok=True)
    txn_ts = 1_767_225_600_000 + rng.integers(0, 72 * 3_600_000, n_txns)
    txn_names = pc.binary_join_element_wise(
        "t", pc.cast(pa.array(np.arange(n_txns)), pa.string()), ""
    )
    pq.write_table(
        pa.table(
            {
                "txn_id": txn_names,
                "ts": pa.array(txn_ts, pa.timestamp("ms", tz="UTC")),
                "amount": rng.gamma(2.0, 40.0, n_txns),
            }
        ),
        folder / "transactions.parquet",
    )
    per_file = n_events // files
    weights = np.arange(1, len(PAGES) + 1, dtype=float) ** -1.1  # Zipf-like page popularity
    weights /= weights.sum()
    for i in range(files):
        txn = rng.integers(0, n_txns, per_file)
        ts = txn_ts[txn] - rng.integers(0, 1_800_000, per_file)
        page = rng.choice(len(PAGES), per_file, p=weights)
        table = pa.table(
            {
                "txn_id": txn_names.take(pa.array(txn)),
                "ts": pa.array(ts, pa.timestamp("ms", tz="UTC")),
                "event": pa.DictionaryArray.from_arrays(pa.array(page, pa.int32()), PAGES).cast(
                    pa.string()
                ),
            }
        )
        pq.write_table(table, folder / "events" / f"part-{i:03d}.parquet", row_group_size=250_000)


def run_dask(work: Path, params: dict) -> dict:
    from tasks.ingest import IngestParams, run_ingest

    result = run_ingest(
        str(work / "events"),
        str(work / "transactions.parquet"),
        str(work / "out-dask"),
        IngestParams(**params),
    )
    return {"sequences": _rows(work / "out-dask"), "counts": result.counts["events"]}


def _worker_baseline() -> int:
    """RSS of a worker with everything an ingest task imports, before it holds any data."""
    import tasks.ingest_events  # noqa: F401

    return psutil.Process().memory_info().rss


def run_dask_limited(work: Path, params: dict, limit: str) -> dict:
    # An idle worker holds ~200 MiB (Python, pandas, Arrow, Dask) of a limit this small: spill
    # early and pause late. p2p's shuffle buffers default to 1 GiB (comm) and 100 MiB (disk
    # writes); here they must be small, or buffered shards alone reach the pause. Arrow's
    # default pool (mimalloc) keeps freed memory, which the worker counts as its own; the
    # system allocator, trimmed by the nanny and with every large block mapped on its own
    # (glibc would otherwise raise its mmap threshold and keep freed blocks), gives it back.
    os.environ.update(
        ARROW_DEFAULT_MEMORY_POOL="system",
        MALLOC_MMAP_THRESHOLD_="65536",
        DASK_DISTRIBUTED__WORKER__MEMORY__TARGET="0.6",
        DASK_DISTRIBUTED__WORKER__MEMORY__SPILL="0.7",
        DASK_DISTRIBUTED__WORKER__MEMORY__PAUSE="0.95",
        DASK_DISTRIBUTED__WORKER__MEMORY__TERMINATE="0.99",
        DASK_DISTRIBUTED__P2P__COMM__BUFFER="4MiB",
        DASK_DISTRIBUTED__P2P__STORAGE__BUFFER="4MiB",
    )
    from distributed import Client, LocalCluster

    from tasks.ingest import IngestParams, run_ingest

    with (
        tempfile.TemporaryDirectory(prefix="dask-spill-") as spill,
        LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            memory_limit=limit,
            processes=True,
            dashboard_address=None,
            local_directory=spill,
        ) as cluster,
        Client(cluster) as client,  # the default scheduler: run_ingest uses it (infra.dask)
    ):
        baseline = next(iter(client.run(_worker_baseline).values()))
        result = run_ingest(
            str(work / "events"),
            str(work / "transactions.parquet"),
            str(work / "out-dask-limited"),
            IngestParams(**params),
        )
    return {
        "sequences": _rows(work / "out-dask-limited"),
        "counts": result.counts["events"],
        "worker_memory_limit": limit,
        "worker_baseline_mib": round(baseline / 2**20),
        **params,
    }


def run_pandas(events: str) -> dict:
    """What one would write first: load everything, sort, group into Python lists."""
    import pandas as pd

    frame = pd.read_parquet(events, columns=["txn_id", "ts", "event"])
    frame = frame.sort_values(["txn_id", "ts"])
    grouped = frame.groupby("txn_id", sort=False).agg(events=("event", list), ts=("ts", list))
    return {"sequences": len(grouped)}


def _rows(out: Path) -> int:
    return pq.read_metadata(out / "sequences.parquet").num_rows


def measure(args: list[str], timeout: float = 300) -> dict:
    """Run one mode in a child process; wall time and peak RSS of its whole process tree."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)
    parent = psutil.Process(child.pid)
    peak, done = 0, threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            try:
                procs = [parent, *parent.children(recursive=True)]
                total = 0
                for p in procs:
                    with contextlib.suppress(psutil.Error):
                        total += p.memory_info().rss
                peak = max(peak, total)
            except psutil.Error:
                pass
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        out, _ = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        for p in [*parent.children(recursive=True), parent]:
            with contextlib.suppress(psutil.Error):
                p.kill()
        out = ""
    done.set()
    sampler.join()
    if child.returncode != 0:
        return {
            "mode": args[1],
            "failed": child.returncode,
            "seconds": round(time.perf_counter() - start, 1),
        }
    result = json.loads(out.strip().splitlines()[-1])
    result.update(seconds=round(time.perf_counter() - start, 1), peak_gb=round(peak / 2**30, 2))
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--transactions", type=int, default=600_000)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--partitions", type=int, default=64)
    parser.add_argument("--piece-rows", type=int, default=1_000_000)
    parser.add_argument(
        "--limit-fraction",
        type=float,
        default=0.9,
        help="dask-limited: the worker's memory limit as a fraction of the events' Arrow size",
    )
    parser.add_argument("--workdir", default=None, help="keep data here (default: a temp dir)")
    parser.add_argument("--modes", default="dask,pandas,dask-limited")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per mode")
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--params", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--limit", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-ingest-"))
    events = str(work / "events")

    if args.mode:  # child
        shutil.rmtree(work / f"out-{args.mode}", ignore_errors=True)
        params = json.loads(args.params)
        if args.mode == "dask":
            result = run_dask(work, params)
        elif args.mode == "pandas":
            result = run_pandas(events)
        else:
            result = run_dask_limited(work, params, args.limit)
        print(json.dumps({"mode": args.mode, **result}))
        return

    if not (work / "events").exists():
        t0 = time.perf_counter()
        generate(work, args.events, args.transactions, args.files)
        print(f"generated in {time.perf_counter() - t0:.1f} s under {work}", flush=True)
    files = sorted((work / "events").glob("*.parquet"))
    on_disk = sum(p.stat().st_size for p in files)
    # The data's size: all events decoded into Arrow (one file at a time, to measure it).
    in_memory = sum(pq.read_table(p, columns=["txn_id", "ts", "event"]).nbytes for p in files)
    limit = int(in_memory * args.limit_fraction)
    # Under the limit, a task's working set and a shuffled partition each ~1/32 of it.
    task_bytes = limit / 32
    limited = {
        "piece_rows": max(1, int(task_bytes * args.events / in_memory)),
        "partitions": max(args.partitions, int(np.ceil(in_memory / task_bytes))),
    }
    print(
        f"events: {args.events:,} rows, {on_disk / 2**20:.0f} MiB Parquet, "
        f"{in_memory / 2**20:.0f} MiB as Arrow; dask-limited: 1 worker limited to "
        f"{limit / 2**20:.0f} MiB ({args.limit_fraction:.0%} of the data), {limited}",
        flush=True,
    )
    base = {"partitions": args.partitions, "piece_rows": args.piece_rows}
    results = []
    for mode in args.modes.split(","):
        params = limited if mode == "dask-limited" else base
        child = ["--mode", mode, "--workdir", str(work), "--params", json.dumps(params)]
        result = measure([*child, "--limit", f"{limit // 2**20}MiB"], timeout=args.timeout)
        print(json.dumps(result), flush=True)
        results.append(result)
    (work / "results.json").write_text(json.dumps(results, indent=2))
    _table(results)


def _table(results: list[dict]) -> None:
    """Time and peak memory of each mode, and their ratios to the naive pandas run."""
    pandas = next((r for r in results if r["mode"] == "pandas" and "failed" not in r), None)
    print(f"{'mode':<14}{'seconds':>9}{'peak GB':>9}{'time/pandas':>13}{'peak/pandas':>13}")
    for r in results:
        if "failed" in r:
            print(f"{r['mode']:<14}{r['seconds']:>9.1f}  failed ({r['failed']})")
            continue
        ratios = ("", "")
        if pandas:
            ratios = (
                f"{r['seconds'] / pandas['seconds']:.2f}",
                f"{r['peak_gb'] / pandas['peak_gb']:.2f}",
            )
        print(
            f"{r['mode']:<14}{r['seconds']:>9.1f}{r['peak_gb']:>9.2f}{ratios[0]:>13}{ratios[1]:>13}"
        )


if __name__ == "__main__":
    main()
