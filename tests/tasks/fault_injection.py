"""Test harness: a Ray Train worker that dies once, mid-epoch, as if it were killed.

``dying_once`` stands in for ``tasks.pretrain_worker.train_loop_per_worker`` (the test
monkeypatches ``tasks.pretrain``'s reference to it). It runs the production loop unchanged;
on the chosen rank of the first attempt it wraps that module's ``train_epoch`` so the batches
of the chosen epoch stop at the chosen step with ``os._exit``: no cleanup, no exception.
The production loop knows nothing of it.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import ray.train

import tasks.pretrain_worker as worker
from ops.sequence import SequenceBatch


def dying_once(config: dict[str, Any]) -> None:
    """The training loop, whose worker ``config["fault"]["rank"]`` dies once.

    ``fault`` holds ``epoch``, ``step`` and ``rank``: where the worker dies; ``marker``: a
    file that records the death, so the restarted group trains on; ``delay_s``: a wait before
    dying. Ray's controller collects reports every 2 s (``RAY_TRAIN_HEALTH_CHECK_INTERVAL_S``),
    and a worker that dies sooner after a report takes that report's checkpoint with it (the
    run then restarts from epoch 0).

    Parameters
    ----------
    config : dict
        The loop's configuration, with the ``fault`` entry above.
    """
    fault = config["fault"]
    rank = ray.train.get_context().get_world_rank()
    if rank == fault["rank"] and not Path(fault["marker"]).exists():
        # The first attempt starts at epoch 0: the n-th call trains epoch n.
        epochs = itertools.count()
        train_epoch = worker.train_epoch

        def train_epoch_dying(objective: Any, batches: Iterable[SequenceBatch], *args: Any) -> Any:
            epoch = next(epochs)
            if epoch == fault["epoch"]:
                batches = _dying(batches, fault, epoch, rank)
            return train_epoch(objective, batches, *args)

        worker.train_epoch = train_epoch_dying
    worker.train_loop_per_worker(config)


def _dying(
    batches: Iterable[SequenceBatch], fault: dict[str, Any], epoch: int, rank: int
) -> Iterator[SequenceBatch]:
    for step, batch in enumerate(batches):
        if step == fault["step"]:
            time.sleep(fault.get("delay_s", 0.0))
            Path(fault["marker"]).write_text(f"epoch {epoch} step {step} rank {rank}\n")
            os._exit(1)  # no cleanup, no exception: as if the process were killed
        yield batch
