"""What the terminal shows of a failed run: the CLI's one line, not the engine's tracebacks.

Prefect logs a failing task or flow several times over (the exception with its traceback, then
each run's final state), on its API handler and on its console handler alike. The run's log in
the Prefect API is where that belongs; on the terminal it buries the one sentence a person or a
scheduler's alert needs. :func:`quiet_terminal` therefore filters only the console handlers:
engine records about the failure are withheld and any other traceback is cut to its message.
``shoal --verbose`` skips it, so the terminal shows everything the run log holds.
"""

from __future__ import annotations

import logging
import re

# The loggers of Prefect's flow and task run engines (and of ``get_run_logger``).
_RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")
# A run's final state repeats the exception that the CLI reports in its own words.
_FAILED_STATE = re.compile(r"Finished in state (Failed|Crashed|TimedOut)\b")


class _WithholdRunFailures(logging.Filter):
    """Drops the run engines' error records and failed final states; the API log keeps them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(_RUN_LOGGERS):
            return True
        if record.levelno >= logging.ERROR:
            return False
        return not _FAILED_STATE.match(record.getMessage())


class _WithoutTraceback(logging.Formatter):
    """Formats with the wrapped formatter, leaving out the traceback and stack.

    The record is shared with the other handlers (the API's keeps the traceback), so its
    exception fields are set aside only while this handler formats it.
    """

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            return self.inner.format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved


def quiet_terminal() -> None:
    """Install the filter and formatter on Prefect's console handler. Idempotent.

    Call once ``PREFECT_HOME`` is set: Prefect's logging is configured here if it is not yet,
    and a later configuration by Prefect is incremental (levels only), so the handlers stay.
    """
    from prefect.logging.configuration import PROCESS_LOGGING_CONFIG, setup_logging
    from prefect.logging.handlers import PrefectConsoleHandler

    if not PROCESS_LOGGING_CONFIG:
        setup_logging()

    for handler in logging.getLogger().handlers:
        if not isinstance(handler, PrefectConsoleHandler):
            continue
        if any(isinstance(f, _WithholdRunFailures) for f in handler.filters):
            continue
        handler.addFilter(_WithholdRunFailures())
        handler.setFormatter(_WithoutTraceback(handler.formatter))
