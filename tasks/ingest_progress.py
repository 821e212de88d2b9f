"""Ingest's progress in rows: each piece of the events, once read, counts towards its pass.

A piece's Dask task reports the rows it read (:func:`report_rows`). Under Dask's threaded
scheduler the report is a call in this process; on a distributed worker it is an event on the
``TOPIC`` topic, which the client relays to the driver. The driver turns both into the stage's
progress (``infra.progress``): a live bar on an interactive terminal, and a log line, in the
Prefect run's log too, at every tenth of the pieces and at the last: rows read and files done.
"""

from __future__ import annotations

import math
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import dask

from infra.progress import StageProgress, stage_logger

TOPIC = "shoal-ingest-rows"
LOG_LINES = 10  # per pass, besides the last: a lake of thousands of pieces stays readable
DISTRIBUTED_WAIT_S = 10.0  # events of a distributed worker may trail the computation's end
_listeners: list[Callable[[str, int], None]] = []  # the threaded scheduler's, in this process


def report_rows(path: str, rows: int) -> None:
    """Report, from a piece's task, that ``rows`` rows of the file ``path`` were read."""
    worker = _distributed_worker()
    if worker is not None:
        worker.log_event(TOPIC, {"path": path, "rows": rows})
        return
    for listener in list(_listeners):
        listener(path, rows)


def _distributed_worker() -> Any:
    """Return the distributed worker running this task, or None (threads, or no distributed)."""
    if "distributed" not in sys.modules:  # never imported: this is no distributed worker
        return None
    from distributed import get_worker

    try:
        return get_worker()
    except ValueError:
        return None


def _distributed_client() -> Any:
    """Return the distributed client the enclosed Dask work runs on, or None for threads."""
    if dask.config.get("scheduler", None) != "dask.distributed":
        return None
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        return None


@contextmanager
def rows_progress(stage: str, paths: Sequence[str]) -> Iterator[None]:
    """Show the progress of one pass over the pieces of ``paths`` (one entry a piece)."""
    pieces_of = Counter(paths)
    done_of: Counter[str] = Counter()
    rows, done, files, lock, finished = 0, 0, 0, threading.Lock(), threading.Event()
    total = len(paths)
    logger = stage_logger("shoal.ingest")

    def on_rows(path: str, read: int) -> None:
        nonlocal rows, done, files
        if path not in pieces_of:  # another ingest's piece, in the same process or cluster
            return
        with lock:
            rows, done = rows + read, min(total, done + 1)
            done_of[path] += 1
            files += done_of[path] == pieces_of[path]
            progress.update(done, f"{rows:,} rows read, {files}/{len(pieces_of)} files")
            if done == total:
                finished.set()

    client = _distributed_client()
    every = math.ceil(total / LOG_LINES) if total else 1
    with StageProgress(stage, total, "piece", logger, log_every=every) as progress:
        if client is not None:
            client.subscribe_topic(TOPIC, lambda event: on_rows(event[1]["path"], event[1]["rows"]))
        else:
            _listeners.append(on_rows)
        try:
            yield
            if client is not None and total:
                finished.wait(DISTRIBUTED_WAIT_S)
        finally:
            if client is not None:
                client.unsubscribe_topic(TOPIC)
            else:
                _listeners.remove(on_rows)
