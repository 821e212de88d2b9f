"""Ingest at lake scale: 10M events of 600k transactions from Parquet, checked and sessionized.

Each measurement runs in its own process and the parent samples the RSS of that process and
all its children (Dask workers included) every 50 ms, so "peak" is what the machine gave it.

    .venv/bin/python benchmarks/bench_ingest.py                 # generate, then every mode
    .venv/bin/python benchmarks/bench_ingest.py --events 1000000 --transactions 60000

Modes: ``dask`` (``tasks.ingest.run_ingest``, what ``shoal ingest`` runs: transactions checked
in memory, events checked and sessionized out of core on Dask's threaded scheduler),
``pandas`` (the naive read-everything + ``groupby(...).agg(list)``, no checks), and
``dask-limited`` (the same ``run_ingest`` on a ``LocalCluster`` of one worker process whose
memory limit is below the events' in-memory size).
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
    """Events in ``files`` Parquet files, each with events of any transaction (so the shuffle
    is real), and a transactions file; built from numpy and Arrow, no Python loop per row."""
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


def run_dask(work: Path, partitions: int) -> dict:
    from tasks.ingest import IngestParams, run_ingest

    result = run_ingest(
        str(work / "events"),
        str(work / "transactions.parquet"),
        str(work / "out-dask"),
        IngestParams(partitions=partitions),
    )
    return {"sequences": _rows(work / "out-dask"), "counts": result.counts["events"]}


def run_dask_limited(work: Path, partitions: int, limit: str) -> dict:
    # An idle worker holds ~165 MiB (Python, pandas, Arrow) of a limit this small: spill early
    # and pause late. p2p's shuffle buffers default to 1 GiB (comm) and 100 MiB (disk writes);
    # under a few hundred MiB they must be small, or buffered shards alone reach the pause.
    # Arrow's default pool (mimalloc) keeps freed memory, which the worker counts as its own;
    # the system allocator, trimmed by the nanny, gives it back.
    os.environ.update(
        ARROW_DEFAULT_MEMORY_POOL="system",
        DASK_DISTRIBUTED__WORKER__MEMORY__TARGET="0.6",
        DASK_DISTRIBUTED__WORKER__MEMORY__SPILL="0.7",
        DASK_DISTRIBUTED__WORKER__MEMORY__PAUSE="0.95",
        DASK_DISTRIBUTED__WORKER__MEMORY__TERMINATE="0.99",
        DASK_DISTRIBUTED__P2P__COMM__BUFFER="16MiB",
        DASK_DISTRIBUTED__P2P__STORAGE__BUFFER="16MiB",
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
        Client(cluster),  # the default scheduler: run_ingest uses it (infra.dask)
    ):
        result = run_ingest(
            str(work / "events"),
            str(work / "transactions.parquet"),
            str(work / "out-dask-limited"),
            IngestParams(partitions=partitions),
        )
    return {
        "sequences": _rows(work / "out-dask-limited"),
        "counts": result.counts["events"],
        "worker_memory_limit": limit,
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
    parser.add_argument("--workdir", default=None, help="keep data here (default: a temp dir)")
    parser.add_argument("--modes", default="dask,pandas,dask-limited")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per mode")
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--limit", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-ingest-"))
    events = str(work / "events")

    if args.mode:  # child
        shutil.rmtree(work / f"out-{args.mode}", ignore_errors=True)
        if args.mode == "dask":
            result = run_dask(work, args.partitions)
        elif args.mode == "pandas":
            result = run_pandas(events)
        else:
            result = run_dask_limited(work, args.partitions, args.limit)
        print(json.dumps({"mode": args.mode, **result}))
        return

    if not (work / "events").exists():
        t0 = time.perf_counter()
        generate(work, args.events, args.transactions, args.files)
        print(f"generated in {time.perf_counter() - t0:.1f} s under {work}", flush=True)
    data = pq.read_table(events, columns=["txn_id", "ts", "event"])
    in_memory = data.nbytes
    on_disk = sum(p.stat().st_size for p in (work / "events").glob("*.parquet"))
    del data
    import dask.dataframe as dd

    as_pandas = int(
        dd.read_parquet(events, columns=["txn_id", "ts", "event"], split_row_groups=True)
        .memory_usage(deep=True)
        .sum()
        .compute()
    )
    # One worker (one thread) limited below the events' size as the dataframe Dask holds.
    # Below the Arrow size too, workers die: an idle worker alone holds ~160 MiB.
    limit = f"{int(as_pandas * 0.9 / 2**20)}MiB"
    print(
        f"events: {args.events:,} rows, {on_disk / 2**20:.0f} MiB Parquet, "
        f"{in_memory / 2**20:.0f} MiB as Arrow, {as_pandas / 2**20:.0f} MiB as a dataframe; "
        f"dask-limited: 1 worker limited to {limit}",
        flush=True,
    )
    common = ["--workdir", str(work), "--partitions", str(args.partitions), "--limit", limit]
    results = []
    for mode in args.modes.split(","):
        result = measure(["--mode", mode, *common], timeout=args.timeout)
        print(json.dumps(result), flush=True)
        results.append(result)
    (work / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
