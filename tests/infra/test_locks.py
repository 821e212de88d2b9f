"""The output-location lock: refused at once naming the holder, freed by the holder's death."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from infra.locks import OUTPUT_TAG, LocationBusy, fail_abandoned_runs, hold_location
from infra.tracking import configure
from tests.flows.shoal_process import hold_elsewhere


@pytest.fixture
def holder(shoal_home: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Another process holding ``<tmp_path>/out`` for MLflow run ``r-other``."""
    location = str(tmp_path / "out")
    process = hold_elsewhere(location, shoal_home, "r-other")
    yield process, location
    process.kill()
    process.wait()


def test_a_held_location_is_refused_naming_it_and_its_holder(
    holder: tuple[subprocess.Popen[str], str],
) -> None:
    process, location = holder
    with pytest.raises(LocationBusy) as err, hold_location(location):
        pass
    message = str(err.value)
    for part in (location, f"pid {process.pid}", socket.gethostname(), "r-other"):
        assert part in message


def test_sigkill_of_the_holder_frees_the_location(
    holder: tuple[subprocess.Popen[str], str],
) -> None:
    process, location = holder
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    with hold_location(location) as mine:
        assert mine.info["pid"] == os.getpid()


def test_one_process_cannot_hold_a_location_twice(shoal_home: Path, tmp_path: Path) -> None:
    location = str(tmp_path / "out")
    with hold_location(location), pytest.raises(LocationBusy), hold_location(location):
        pass
    with hold_location(location):  # released on exit
        pass


def test_only_running_runs_at_the_location_are_failed(shoal_home: Path, tmp_path: Path) -> None:
    experiment = configure()  # points MLflow at the session's store first
    client = MlflowClient()
    here, elsewhere = str(tmp_path / "here"), str(tmp_path / "elsewhere")

    def run(location: str, finished: bool) -> str:
        run_id = client.create_run(experiment, tags={OUTPUT_TAG: location}).info.run_id
        if finished:
            client.set_terminated(run_id, "FINISHED")
        return run_id

    dead, done, other = run(here, False), run(here, True), run(elsewhere, False)
    assert fail_abandoned_runs(here) == [dead]
    status = {r: client.get_run(r).info.status for r in (dead, done, other)}
    assert status == {dead: "FAILED", done: "FINISHED", other: "RUNNING"}
