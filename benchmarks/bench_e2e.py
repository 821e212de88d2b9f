"""The whole flow at growing sizes: each stage's time and peak memory, and how they grow.

    .venv/bin/python benchmarks/bench_e2e.py                          # 100k and 300k transactions
    .venv/bin/python benchmarks/bench_e2e.py --sizes 1000000,3000000 --workdir /data/e2e

For each size the shop generator writes a world (seed 0; generation is not timed), then
``shoal run`` runs the real flow on it in a child process with a fresh ``SHOAL_HOME`` (so
pretraining is never a cache hit) and the default parameters, or ``--config``'s; its Ray is
its own unless ``RAY_ADDRESS`` names a cluster (``infra.ray.ensure_ray``). The parent
samples the RSS of that process and all its children (Ray and Dask workers included) every
``--interval`` seconds. Each stage's start and end come from the flow's own task runs
(Prefect's database in that home), so a stage's peak memory is the peak seen while it ran:
the largest single process, and the whole tree. It also samples the CPU seconds of the
``shoal run`` process itself, in user mode and in the kernel, which every stage but
pretraining's workers runs in. Start-up is the time from spawning ``shoal run`` to the first
stage; the total is the child's wall time.

Last, each stage's growth exponent: the slope of log(seconds) against log(transactions)
across the sizes and, with three sizes or more, over the two largest, each beside the slope
that ``n log n`` has over the same range, and the growth of each stage's user and kernel CPU
seconds. With
``--repeat N`` each size runs N times and the exponents are fitted to each stage's least
time over its runs: on a shared 2-core machine the noise only ever adds time, and a stage
varies by 10-20 % between runs (figures: benchmarks/README.md). Before each run the files
the previous runs wrote are flushed to disk (``sync``), so that no run pays for its
predecessor's writeback: a 3M run leaves gigabytes of it. ``--drop-caches`` also empties the
page cache (root only), so that every run starts with the same free memory.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STAGES = ["ingest", "pretrain", "embed", "features", "cluster", "evaluate", "explain", "report"]
GB = 2**30


@dataclass
class Sample:
    """One RSS reading of the flow's process tree."""

    at: float  # time.time()
    largest: int  # RSS of the largest process, bytes
    total: int  # RSS of the whole tree, bytes
    user: float  # CPU seconds of the ``shoal run`` process itself, in user mode
    kernel: float  # and in the kernel (page faults among them)


@dataclass
class Measurement:
    """One ``shoal run``: its wall time, its stages' bounds and its RSS samples."""

    n: int
    events: int
    seconds: float
    returncode: int
    stages: dict[str, tuple[float, float]] = field(default_factory=dict)  # start, end (epoch s)
    samples: list[Sample] = field(default_factory=list)
    spawned: float = 0.0

    def stage_seconds(self) -> dict[str, float]:
        """Seconds of start-up and of each stage, in the order they ran."""
        first = min((start for start, _ in self.stages.values()), default=self.spawned)
        times = {"start-up": first - self.spawned}
        times.update({name: end - start for name, (start, end) in self.stages.items()})
        return times

    def bounds(self, stage: str) -> tuple[float, float]:
        """Start and end (epoch s) of a stage, or of start-up: spawn to the first stage."""
        if stage in self.stages:
            return self.stages[stage]
        return self.spawned, self.spawned + self.stage_seconds()[stage]

    def peak(self, start: float, end: float) -> tuple[float, float]:
        """Largest process and whole tree, GB, over samples in ``[start, end]``."""
        inside = [s for s in self.samples if start <= s.at <= end]
        if not inside:
            return float("nan"), float("nan")
        return max(s.largest for s in inside) / GB, max(s.total for s in inside) / GB

    def cpu(self, start: float, end: float) -> tuple[float, float]:
        """User and kernel CPU seconds of the ``shoal run`` process in ``[start, end]``.

        That process runs every stage but pretraining's workers (and the fit, where it is
        placed on a Ray cluster); the bounds are the samples just outside the stage.
        """
        before = [(s.user, s.kernel) for s in self.samples if s.at <= start]
        if start <= self.spawned:  # start-up: the process had no CPU time when spawned
            before.append((0.0, 0.0))
        after = [s for s in self.samples if s.at >= end]
        if not before or not after:
            return float("nan"), float("nan")
        return after[0].user - before[-1][0], after[0].kernel - before[-1][1]


def sample_tree(pid: int, interval: float, samples: list[Sample], done: threading.Event) -> None:
    """Append an RSS sample of ``pid`` and its descendants every ``interval`` s until ``done``."""
    parent = psutil.Process(pid)
    while not done.is_set():
        sizes = []
        with contextlib.suppress(psutil.Error):
            cpu = parent.cpu_times()
            for p in [parent, *parent.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    sizes.append(p.memory_info().rss)
        if sizes:
            samples.append(Sample(time.time(), max(sizes), sum(sizes), cpu.user, cpu.system))
        time.sleep(interval)


def stage_times(prefect_db: Path) -> dict[str, tuple[float, float]]:
    """Start and end (epoch seconds) of the newest ``fraud_clustering`` run's stages."""

    def epoch(value: str) -> float:
        return datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()

    with contextlib.closing(sqlite3.connect(f"file:{prefect_db}?mode=ro", uri=True)) as db:
        (flow_run,) = db.execute(
            "SELECT r.id FROM flow_run r JOIN flow f ON r.flow_id = f.id "
            "WHERE f.name = 'fraud_clustering' ORDER BY r.start_time DESC LIMIT 1"
        ).fetchone()
        rows = db.execute(
            "SELECT name, start_time, end_time FROM task_run "
            "WHERE flow_run_id = ? AND start_time IS NOT NULL AND end_time IS NOT NULL",
            (flow_run,),
        ).fetchall()
    times = {}
    for name, start, end in rows:
        stage = name.rsplit("-", 1)[0]  # Prefect names a task run "<task>-<suffix>"
        if stage in STAGES:
            times[stage] = (epoch(start), epoch(end))
    return dict(sorted(times.items(), key=lambda item: item[1][0]))


def run_flow(world: Path, home: Path, n: int, events: int, args: argparse.Namespace) -> Measurement:
    """``shoal run`` on ``world`` in a child process, sampled; its log goes beside ``home``."""
    command = [
        str(Path(sys.executable).with_name("shoal")),
        "run",
        "--events",
        str(world / "events.parquet"),
        "--transactions",
        str(world / "transactions.parquet"),
    ]
    if args.config:
        command += ["--config", str(args.config)]
    env = {**os.environ, "SHOAL_HOME": str(home)}
    root = str(Path(__file__).resolve().parents[1])  # this checkout's code, not the installed
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    samples: list[Sample] = []
    done = threading.Event()
    log = home.with_suffix(".log").open("w")
    spawned = time.time()
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    sampler = threading.Thread(
        target=sample_tree, args=(child.pid, args.interval, samples, done), daemon=True
    )
    sampler.start()
    try:
        child.wait(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(psutil.Error):
            for p in [*psutil.Process(child.pid).children(recursive=True)]:
                p.kill()
        child.kill()
        child.wait()
    done.set()
    sampler.join()
    log.close()
    measurement = Measurement(
        n=n,
        events=events,
        seconds=time.perf_counter() - started,
        returncode=child.returncode,
        samples=samples,
        spawned=spawned,
    )
    with contextlib.suppress(sqlite3.Error, TypeError, FileNotFoundError):
        measurement.stages = stage_times(home / "prefect" / "prefect.db")
    return measurement


def settle(drop_caches: bool) -> None:
    """Flush every file written so far to disk; with ``drop_caches``, empty the page cache."""
    started = time.perf_counter()
    os.sync()
    note = f"  sync: {time.perf_counter() - started:.1f} s"
    if drop_caches:
        try:
            Path("/proc/sys/vm/drop_caches").write_text("1\n")
            note += ", page cache dropped"
        except OSError as err:
            note += f", page cache kept ({err.strerror})"
    print(note, flush=True)


def generate(world: Path, n: int) -> int:
    """Write the shop world of ``n`` transactions in ``world`` (unless there); count events."""
    import pyarrow.parquet as pq

    from catalog.synthetic import generate_shop

    events = world / "events.parquet"
    if not events.exists():
        generate_shop(world, n_transactions=n, seed=0)
    return pq.read_metadata(events).num_rows


def growth(sizes: list[int], values: list[float]) -> float:
    """Fit the exponent ``k`` in ``value ~ size^k``: the slope of log(value) on log(size)."""
    keep = [(s, v) for s, v in zip(sizes, values, strict=True) if v > 0]
    if len(keep) < 2:
        return float("nan")
    x, y = np.log([s for s, _ in keep]), np.log([v for _, v in keep])
    return float(np.polyfit(x, y, 1)[0])


def print_measurement(m: Measurement) -> None:
    """Print one size's stages: seconds, peak RSS of the largest process and of the tree."""
    largest, total = m.peak(m.spawned, m.spawned + m.seconds)
    print(
        f"\n## {m.n:,} transactions ({m.events:,} events): {m.seconds:.0f} s in all, "
        f"exit {m.returncode}; peak RSS largest process {largest:.2f} GB, whole tree "
        f"{total:.2f} GB; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} "
        f"on {os.cpu_count()} cores"
    )
    header = f"{'stage':10s} {'seconds':>8s} {'largest GB':>11s} {'tree GB':>8s}"
    print(f"{header} {'user s':>7s} {'kernel s':>8s}")
    for stage, seconds in m.stage_seconds().items():
        largest, total = m.peak(*m.bounds(stage))
        user, kernel = m.cpu(*m.bounds(stage))
        print(
            f"{stage:10s} {seconds:8.1f} {largest:11.2f} {total:8.2f} {user:7.1f} {kernel:8.1f}",
            flush=True,
        )


def least_seconds(runs: list[Measurement], name: str) -> float:
    """A stage's (or ``"total"``'s) least seconds over the runs of one size."""
    return min(m.seconds if name == "total" else m.stage_seconds().get(name, 0.0) for m in runs)


def least_cpu(runs: list[Measurement], name: str) -> tuple[float, float]:
    """A stage's least user and least kernel CPU seconds (the flow process) over the runs."""
    times = [m.cpu(*m.bounds(name)) for m in runs if name in m.stage_seconds()]
    if not times:
        return float("nan"), float("nan")
    return min(user for user, _ in times), min(kernel for _, kernel in times)


def print_growth(results: list[list[Measurement]]) -> None:
    """Print each stage's growth exponent over the sizes (two or more), beside n log n's.

    ``results`` holds each size's runs; a stage's time at a size is its least over them. With
    three sizes or more, the slope over the two largest is printed too: the fit over every
    size gives the small sizes' fixed costs (a task's start, imports) as much weight as the
    large ones, which flattens it, while the last step is the growth the next size will see.
    """
    if len(results) < 2:
        return
    sizes = [runs[0].n for runs in results]
    top = sizes[-2:]
    nlogn = growth(sizes, [n * np.log(n) for n in sizes])
    top_nlogn = growth(top, [n * np.log(n) for n in top])
    best = f", least of {len(results[0])} runs" if len(results[0]) > 1 else ""
    print(f"\n# growth exponents over {sizes[0]:,}..{sizes[-1]:,} (n log n: {nlogn:.3f}{best})")
    last = len(sizes) > 2
    if last:
        print(f"# and over the last step, {top[0]:,}..{top[1]:,} (n log n: {top_nlogn:.3f})")
    print(f"{'':10s} {'fit':>6s} {'last':>6s}   s")
    for name in ["start-up", *STAGES, "total"]:
        seconds = [least_seconds(runs, name) for runs in results]
        fit, step = growth(sizes, seconds), growth(top, seconds[-2:])
        flags = [
            label
            for label, over in (("fit", fit > nlogn), ("last step", last and step > top_nlogn))
            if over
        ]
        flag = f"  faster than n log n ({', '.join(flags)})" if flags else ""
        times = " ".join(f"{s:7.1f}" for s in seconds)
        shown = f"{step:6.3f}" if last else f"{'':6s}"
        print(f"{name:10s} {fit:6.3f} {shown}   {times}{flag}")
    peaks = [max(m.peak(m.spawned, m.spawned + m.seconds)[0] for m in runs) for runs in results]
    print(f"{'memory':10s} {growth(sizes, peaks):6.3f}   largest process")
    # which kind of time grows: work in user mode, or the kernel's (fresh pages are faulted
    # in there, and on some machines their cost per page grows with the memory touched)
    print(f"\n# the flow process's CPU seconds: growth over {sizes[0]:,}..{sizes[-1]:,}")
    print(f"{'':10s} {'user':>6s} {'kernel':>7s}   user s / kernel s")
    for name in ["start-up", *STAGES]:
        cpu = [least_cpu(runs, name) for runs in results]
        user, kernel = [u for u, _ in cpu], [k for _, k in cpu]
        pairs = " ".join(f"{u:6.1f}/{k:4.1f}" for u, k in cpu)
        print(f"{name:10s} {growth(sizes, user):6.3f} {growth(sizes, kernel):7.3f}   {pairs}")


def main() -> None:
    """Generate each size's world, run the flow on it, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,300000", help="transactions, comma-separated")
    parser.add_argument("--workdir", type=Path, help="worlds and homes (default: a temp dir)")
    parser.add_argument("--config", type=Path, help="YAML of pipeline parameters for shoal run")
    parser.add_argument("--interval", type=float, default=0.2, help="RSS sampling, seconds")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per flow run")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    parser.add_argument("--repeat", type=int, default=1, help="runs per size (least time kept)")
    parser.add_argument(
        "--drop-caches", action="store_true", help="empty the page cache before each run (root)"
    )
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_e2e_"))
    results: list[list[Measurement]] = []
    for n in sorted(int(s) for s in args.sizes.split(",")):
        world = work / f"world-{n}"
        started = time.perf_counter()
        events = generate(world, n)
        print(f"world {n:,}: {events:,} events ({time.perf_counter() - started:.0f} s to write)")
        results.append([])
        for _ in range(max(1, args.repeat)):
            home = work / f"home-{n}-{time.time_ns()}"
            home.mkdir(parents=True)
            settle(args.drop_caches)
            m = run_flow(world, home, n, events, args)
            log = home.with_suffix(".log")
            print(f"  shoal run: {m.seconds:.0f} s, exit {m.returncode}, log {log}")
            results[-1].append(m)
            print_measurement(m)
    print_growth(results)
    if args.json:
        rows = [
            {
                "transactions": m.n,
                "events": m.events,
                "seconds": m.seconds,
                "returncode": m.returncode,
                "stages": m.stage_seconds(),
                "cpu": {stage: m.cpu(*m.bounds(stage)) for stage in m.stage_seconds()},
                "peak_largest_gb": m.peak(m.spawned, m.spawned + m.seconds)[0],
            }
            for runs in results
            for m in runs
        ]
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
