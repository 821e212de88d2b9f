"""Progress of a long stage: a live display on an interactive terminal, log lines everywhere.

Steps become plain log lines (in the Prefect run's log too, through the logger given), so a
scheduler's log or a piped terminal shows the epochs, the loss, the rows and the time left:
every step, or every ``log_every`` steps for a stage of many small ones. When stderr is an
interactive terminal, a rich progress bar for the stage is drawn there as well, at every step.
"""

from __future__ import annotations

import logging
import sys
import time
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)


def stage_logger(fallback: str) -> logging.Logger | logging.LoggerAdapter[Any]:
    """Return the Prefect run's logger where there is a run, else the logger ``fallback``."""
    from prefect import get_run_logger
    from prefect.exceptions import MissingContextError

    try:
        return get_run_logger()
    except MissingContextError:  # benchmarks, tests and notebooks call the stages directly
        return logging.getLogger(fallback)


def duration(seconds: float) -> str:
    """Render ``seconds`` as ``"1 h 04 min"``, ``"3 min 05 s"`` or ``"42 s"``."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


class StageProgress:
    """Report ``done`` of ``total`` units of a stage, with details and the time left.

    The time left is the mean time per unit so far times the units left; a stage that may stop
    early (pretraining's patience) says "at most".
    """

    def __init__(
        self,
        stage: str,
        total: int,
        unit: str,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        may_stop_early: bool = False,
        interactive: bool | None = None,
        log_every: int = 1,
    ) -> None:
        self.stage, self.total, self.unit, self.logger = stage, total, unit, logger
        self.may_stop_early, self.log_every = may_stop_early, max(1, log_every)
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self.started = time.monotonic()
        self.first_done: int | None = None
        self.bar: Progress | None = None

    def __enter__(self) -> StageProgress:
        """Start the live bar on an interactive terminal."""
        if self.interactive:
            self.bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self.bar.start()
            self.task = self.bar.add_task(self.stage, total=self.total, detail="")
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        """Stop the live bar, leaving its last state on the terminal."""
        if self.bar is not None:
            self.bar.stop()

    def time_left(self, done: int) -> float:
        """Return the seconds left at the pace so far (start-up included, so on the safe side)."""
        if self.first_done is None:
            self.first_done = done - 1  # a resumed stage starts past zero
        units = max(1, done - self.first_done)
        return (time.monotonic() - self.started) / units * (self.total - done)

    def update(self, done: int, detail: str) -> None:
        """Record that ``done`` units are finished; ``detail`` says how (losses, rows…).

        The line is logged at every ``log_every``-th unit and at the last; the bar always moves.
        """
        if self.bar is not None:
            self.bar.update(self.task, completed=done, detail=detail)
        if done % self.log_every and done < self.total:
            return
        left = duration(self.time_left(done))
        bound = "at most " if self.may_stop_early and done < self.total else ""
        self.logger.info(
            "%s %s %d/%d: %s; %s%s left",
            self.stage,
            self.unit,
            done,
            self.total,
            detail,
            bound,
            left,
        )
