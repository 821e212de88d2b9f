"""Ingest reports rows read as its Dask tasks read them: plain lines at a bounded rate.

The lines are what a scheduler's log, a piped terminal and the Prefect run's log show; on an
interactive terminal a bar is drawn as well (``infra.progress``), which nothing here assumes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import Client, LocalCluster

from tasks.ingest import run_ingest
from tests.catalog.test_ingest_out_of_core import FILES, PIECES, _lake
from tests.run_logs import LogLines

EVENTS, N_PIECES = 3000, 9  # _lake's: 3 files of 1000 events, a piece per 400-row group


@pytest.fixture
def ingest_lines(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The lines of the ``shoal.ingest`` logger, three a pass (besides none) for 9 pieces."""
    monkeypatch.setattr("tasks.ingest_progress.LOG_LINES", 3)
    # Our own handler, not caplog's: whether "shoal" loggers propagate to the root depends on
    # whether Prefect configured logging earlier in the session.
    logger, handler = logging.getLogger("shoal.ingest"), LogLines()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler.lines
    logger.removeHandler(handler)
    logger.setLevel(level)


def _pass(lines: list[str], stage: str) -> list[tuple[int, int, int]]:
    """``(pieces done, rows read, files done)`` of each line of ``stage``."""
    pattern = rf"{stage} piece (\d+)/{N_PIECES}: ([\d,]+) rows read, (\d)/{FILES} files; .* left"
    found = [re.fullmatch(pattern, line) for line in lines if line.startswith(stage)]
    assert all(found), lines
    return [(int(m[1]), int(m[2].replace(",", "")), int(m[3])) for m in found if m]


def _check_passes(lines: list[str]) -> None:
    assert "ingest: 300 transaction rows read" in lines
    for stage in ("ingest: checking events", "ingest: writing sessions"):
        steps = _pass(lines, stage)
        assert [done for done, _, _ in steps] == [3, 6, 9], "a line every third piece"
        rows = [r for _, r, _ in steps]
        assert rows == sorted(rows) and steps[-1] == (N_PIECES, EVENTS, FILES)


def test_each_pass_reports_rows_and_files_at_a_bounded_rate(
    tmp_path: Path, ingest_lines: list[str]
) -> None:
    _lake(tmp_path)
    run_ingest(
        str(tmp_path / "events"), str(tmp_path / "transactions.parquet"), str(tmp_path / "out"),
        PIECES,
    )  # fmt: skip
    _check_passes(ingest_lines)


def test_a_distributed_workers_rows_reach_the_driver(
    tmp_path: Path, ingest_lines: list[str]
) -> None:
    _lake(tmp_path)
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster),
    ):
        run_ingest(
            str(tmp_path / "events"), str(tmp_path / "transactions.parquet"),
            str(tmp_path / "out"), PIECES,
        )  # fmt: skip
    _check_passes(ingest_lines)


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_the_lines_reach_the_prefect_run_log(tmp_path: Path) -> None:
    from prefect import flow, task

    from tests.run_logs import flow_run_logs

    _lake(tmp_path)

    @task
    def read_the_lake() -> None:
        run_ingest(
            str(tmp_path / "events"), str(tmp_path / "transactions.parquet"),
            str(tmp_path / "out"), PIECES,
        )  # fmt: skip

    @flow
    def ingesting() -> None:
        read_the_lake()

    state = ingesting(return_state=True)
    logs = flow_run_logs(state.state_details.flow_run_id)
    assert "ingest: 300 transaction rows read" in logs
    for stage in ("checking events", "writing sessions"):
        assert f"ingest: {stage} piece 9/9: 3,000 rows read, 3/3 files" in logs
