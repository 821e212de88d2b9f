"""The output-location lock: refused at once naming the holder, freed by the holder's death.

And a rerun of a command finding the location its dead run left.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from infra.locks import (
    COMMAND_TAG,
    OUTPUT_TAG,
    LocationBusy,
    claim_output,
    command_key,
    fail_abandoned_runs,
    hold_location,
    unfinished_location,
)
from infra.storage import OutputLocation, output_root
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


def _run(key: str, location: Path, status: str, started_ms: int) -> str:
    """A fake run of command ``key`` at ``location`` that ended with ``status``."""
    client = MlflowClient()
    tags = {COMMAND_TAG: key, OUTPUT_TAG: str(location)}
    run_id = client.create_run(configure(), start_time=started_ms, tags=tags).info.run_id
    if status != "RUNNING":
        client.set_terminated(run_id, status)
    return run_id


def test_the_command_key_is_inputs_and_parameters(
    shoal_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key = command_key(str(tmp_path / "e.parquet"), "s3://lake/t", {"epochs": 2})
    monkeypatch.chdir(tmp_path)
    assert command_key("e.parquet", "s3://lake/t", {"epochs": 2}) == key  # same file
    assert command_key("e.parquet", "s3://lake/t", {"epochs": 3}) != key
    assert command_key("e.parquet", "s3://lake/u", {"epochs": 2}) != key


def test_the_newest_unfinished_unpublished_location_of_the_command_is_found(
    shoal_home: Path, tmp_path: Path
) -> None:
    key, root = uuid.uuid4().hex, output_root()
    assert unfinished_location(key) is None
    _run(key, root / "done", "FINISHED", 1_000)
    assert unfinished_location(key) is None, "only finished runs: a new location"
    _run(key, root / "older", "FAILED", 2_000)
    _run(key, root / "newest", "RUNNING", 4_000)
    _run(key, tmp_path / "outside-the-root", "RUNNING", 5_000)
    _run(key, root / "published", "FAILED", 6_000)
    _run(uuid.uuid4().hex, root / "other-command", "RUNNING", 7_000)
    (root / "published").mkdir(parents=True)
    assert unfinished_location(key) == OutputLocation(str(root / "newest"))
    (root / "newest").symlink_to(root / "published")
    assert unfinished_location(key) == OutputLocation(str(root / "older"))


def test_a_rerun_takes_back_its_dead_runs_location_unless_it_is_alive(
    shoal_home: Path,
) -> None:
    key = uuid.uuid4().hex
    dead_location = output_root() / f"dead-{key}"
    dead = _run(key, dead_location, "RUNNING", 1_000)
    with claim_output(None, "rerun", {}, command=key) as (run_id, location):
        assert location == OutputLocation(str(dead_location))
        assert MlflowClient().get_run(run_id).data.tags[COMMAND_TAG] == key
    assert MlflowClient().get_run(dead).info.status == "FAILED"

    alive = uuid.uuid4().hex
    held = output_root() / f"alive-{alive}"
    _run(alive, held, "RUNNING", 1_000)
    process = hold_elsewhere(str(held), shoal_home, "r-alive")
    try:
        with claim_output(None, "second", {}, command=alive) as (run_id, location):
            assert location == OutputLocation(str(output_root() / run_id))
    finally:
        process.kill()
        process.wait()
