"""A long stage's progress: one plain line per step, the time left, a bar on a terminal."""

from __future__ import annotations

import io
import logging
import re

import pytest
from rich.console import Console

from infra.progress import StageProgress, duration


def test_one_plain_line_per_step_with_the_time_left(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("shoal.test_progress")
    with (
        caplog.at_level(logging.INFO, logger=logger.name),
        StageProgress("pretrain", 4, "epoch", logger, may_stop_early=True, interactive=False) as p,
    ):
        assert p.bar is None
        for epoch in range(1, 5):
            p.update(epoch, f"train loss {1 / epoch:.4f}")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4
    assert lines[0].startswith("pretrain epoch 1/4: train loss 1.0000; at most ")
    assert re.fullmatch(r"pretrain epoch 4/4: train loss 0\.2500; 0 s left", lines[-1])


def test_a_terminal_gets_a_live_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(
        "infra.progress.Console", lambda stderr: Console(file=screen, force_terminal=True)
    )
    logger = logging.getLogger("shoal.test_progress")
    with StageProgress("ingest", 2, "piece", logger, interactive=True) as p:
        p.update(1, "10,000 rows")
        p.update(2, "20,000 rows")
    assert p.bar is not None and p.bar.tasks[0].completed == 2
    assert "ingest" in screen.getvalue() and "20,000 rows" in screen.getvalue()


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.4, "0 s"), (42, "42 s"), (185, "3 min 05 s"), (3840, "1 h 04 min")]
)
def test_durations_read_as_words(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_a_stage_of_many_steps_logs_every_nth_and_the_last(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("shoal.test_progress")
    with (
        caplog.at_level(logging.INFO, logger=logger.name),
        StageProgress("ingest", 7, "piece", logger, interactive=False, log_every=3) as p,
    ):
        for piece in range(1, 8):
            p.update(piece, f"{piece * 100:,} rows read")
    lines = [r.getMessage().split(";")[0] for r in caplog.records]
    assert lines == [
        "ingest piece 3/7: 300 rows read",
        "ingest piece 6/7: 600 rows read",
        "ingest piece 7/7: 700 rows read",
    ]
