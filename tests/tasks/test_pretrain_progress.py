"""Rank 0's epochs reach the driver through a Ray queue and become progress lines."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import ray

from tasks.pretrain_progress import PROGRESS_KEY, epoch_progress, epoch_reporter
from tests.run_logs import LogLines


@pytest.fixture
def own_ray() -> Iterator[None]:
    """Start a local Ray of our own: ``ray.init()`` alone may join another cluster here."""
    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=1, include_dashboard=False)
    yield
    if started:
        ray.shutdown()


@pytest.mark.usefixtures("own_ray")
def test_each_reported_epoch_is_one_line_on_the_driver() -> None:
    # Our own handler, not caplog's: whether "shoal" loggers propagate to the root depends on
    # whether Prefect configured logging earlier in the session, and with both attached a
    # propagated record was captured twice.
    logger, handler = logging.getLogger("shoal.pretrain"), LogLines()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with epoch_progress(3) as extra:
            assert set(extra) == {PROGRESS_KEY}
            config = {"epochs": 3, **extra}
            epoch_reporter(config, rank=1)({"epoch": 0})  # other ranks stay silent
            report = epoch_reporter(config, rank=0)
            for epoch in range(3):
                loss = 1.0 - 0.1 * epoch
                report({"epoch": epoch, "train_loss": loss, "val_loss": loss, "epoch_seconds": 2})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    lines = handler.lines
    assert [line.split(":")[0] for line in lines] == [f"pretrain epoch {e}/3" for e in (1, 2, 3)]
    assert "train loss 0.8000, val loss 0.8000" in lines[-1] and lines[-1].endswith("left")
    assert epoch_reporter({}, rank=0)({"epoch": 0}) is None  # no queue: nothing to do
