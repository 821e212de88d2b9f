"""What a flow run left in the Prefect API's log: the run's own record, beyond the terminal."""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID


def flow_run_logs(flow_run_id: UUID | None = None) -> str:
    """Every log message of ``flow_run_id`` (default: the latest failed flow run), in order."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort, LogSort
    from prefect.logging.handlers import APILogWorker

    # This process's log records reach the API in batches from a background worker: send
    # what is queued first, or the last lines of a run that just ended may not be there yet.
    APILogWorker.drain_all()

    async def read() -> str:
        async with get_client() as client:
            run_id = flow_run_id
            if run_id is None:
                failed = FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.FAILED]))
                )
                (run,) = await client.read_flow_runs(
                    flow_run_filter=failed, sort=FlowRunSort.START_TIME_DESC, limit=1
                )
                run_id = run.id
            logs = await client.read_logs(
                LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])),
                sort=LogSort.TIMESTAMP_ASC,
            )
            return "\n".join(log.message for log in logs)

    return asyncio.run(read())


class LogLines(logging.Handler):
    """Every message one logger emits, whatever else handles or propagates it."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the record's message."""
        self.lines.append(record.getMessage())
