"""What this process holds from the OS: open descriptors, child processes, resident memory.

A long-lived worker runs flow after flow; comparing these between runs is how a leak of files,
sockets, Ray or Dask processes, or memory shows up (``tests/flows/test_leaks.py``,
``benchmarks/leak_check.py``).
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import psutil

# Growth allowed between the first run after warm-up and the last: Ray's worker pool and gRPC
# channels breathe by a few descriptors and a process, and RSS by allocator noise; a leak of
# one client, store, pool or batch of arrays per run exceeds them within a few runs.
LEAK_TOLERANCE = {"fds": 4, "processes": 1, "rss_mb": 64.0}


@dataclass(frozen=True)
class Usage:
    """What a process holds: open file descriptors, child processes and resident memory."""

    fds: int
    processes: int
    rss_mb: float

    def __str__(self) -> str:
        """One aligned line, for logs that compare runs."""
        return f"fds {self.fds:4d}  processes {self.processes:3d}  rss {self.rss_mb:8.1f} MB"


def process_usage(settle_s: float = 10.0) -> Usage:
    """Usage after garbage collection, once the number of child processes stops changing.

    Ray workers of a finished training exit a moment after it returns; counting them while they
    exit would read as a leak. Waits at most ``settle_s``.
    """
    gc.collect()
    me = psutil.Process()
    deadline = time.monotonic() + settle_s
    children = len(me.children(recursive=True))
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = len(me.children(recursive=True))
        if now == children:
            break
        children = now
    return Usage(
        fds=len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else me.num_fds(),
        processes=children,
        rss_mb=me.memory_info().rss / 2**20,
    )


def growth(samples: Sequence[Usage], warmup: int = 1) -> dict[str, float]:
    """Each measure's rise from the first sample after ``warmup`` to the last one."""
    if len(samples) < warmup + 2:
        raise ValueError(
            f"need at least {warmup + 2} samples to measure growth, got {len(samples)}"
        )
    first, last = asdict(samples[warmup]), asdict(samples[-1])
    return {key: last[key] - first[key] for key in first}
