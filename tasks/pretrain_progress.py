"""Pretraining's per-epoch progress, carried from Ray Train's rank 0 to the driver.

Ray Train reports reach its controller, not the process that called ``fit``; so rank 0 also
puts each epoch's figures on a Ray queue (an actor that reserves no CPU, which the training
workers need), and a thread of the driver turns them into the stage's progress: one log line
per epoch in the Prefect run's log, and a live bar on an interactive terminal.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from queue import Empty, Full
from typing import Any

from ray.exceptions import RayError
from ray.util.queue import Queue

from infra.progress import StageProgress, stage_logger

PROGRESS_KEY = "progress"  # the worker config's entry holding the queue


def epoch_detail(metrics: dict[str, float]) -> str:
    """Describe one epoch's figures in words."""
    return (
        f"train loss {metrics['train_loss']:.4f}, val loss {metrics['val_loss']:.4f}, "
        f"{metrics['epoch_seconds']:.0f} s of training"
    )


@contextmanager
def epoch_progress(epochs: int) -> Iterator[dict[str, Any]]:
    """Yield the config entries that make rank 0 report each epoch; relay them meanwhile."""
    # In the task's thread: the relay thread has no run context.
    logger = stage_logger("shoal.pretrain")
    queue = Queue(actor_options={"num_cpus": 0})
    finished = threading.Event()

    def relay(progress: StageProgress) -> None:
        try:
            while not (finished.is_set() and queue.empty()):
                try:
                    metrics = queue.get(timeout=1.0)
                except Empty:
                    continue
                progress.update(int(metrics["epoch"]) + 1, epoch_detail(metrics))
        except RayError as err:  # progress is a courtesy: never a reason to fail training
            logger.warning("pretrain progress is no longer reported: %s", err)

    with StageProgress("pretrain", epochs, "epoch", logger, may_stop_early=True) as progress:
        thread = threading.Thread(target=relay, args=(progress,), daemon=True)
        thread.start()
        try:
            yield {PROGRESS_KEY: queue}
        finally:
            finished.set()
            thread.join(timeout=10)
            queue.shutdown()


def epoch_reporter(config: dict[str, Any], rank: int) -> Callable[[dict[str, float]], None]:
    """Return what a worker calls with each epoch's figures (only rank 0 reports)."""
    queue = config.get(PROGRESS_KEY)
    if queue is None or rank != 0:
        return lambda metrics: None

    def report(metrics: dict[str, float]) -> None:
        with suppress(RayError, Full):  # a lost progress line must not stop training
            queue.put(metrics, timeout=10)

    return report
