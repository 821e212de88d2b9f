"""One run at a time per output location: an OS file lock, refused at once when taken.

The lock is ``flock(2)`` on a file under ``SHOAL_HOME/locks`` named by a hash of the location
(not inside the location: a run refused for bad input must leave no trace there). The kernel
drops it when its holder dies, SIGKILL included, so a crashed run never blocks the rerun. A
second run on a taken location fails at once, naming the location and its holder, instead of
waiting: a scheduler retries, a person reads who holds it. Runs that share the location from
machines that do not share ``SHOAL_HOME`` are not seen (object-store outputs included).

Holding the lock also proves that no live process writes the location, so an MLflow run tagged
with it and still RUNNING belongs to a killed process: it is marked FAILED before the new run
starts, and the history shows the crash.

A run given no location is keyed by its command (inputs and parameters): rerunning a command
whose last run died before publishing takes that run's location back, so its staged stages and
training checkpoints are found, unless a live run holds it.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from mlflow.tracking import MlflowClient

from infra.settings import get_settings
from infra.storage import OutputError, OutputLocation, is_remote, output_root
from infra.tracking import RunLogger, configure, tracked_run

OUTPUT_TAG = "shoal.output"
COMMAND_TAG = "shoal.command"


class LocationBusy(OutputError):
    """Another live run holds the output location."""


class Holder:
    """Who holds a location: written beside the lock so a refused run can name them."""

    def __init__(self, path: Path, location: str) -> None:
        self.path = path
        self.info: dict[str, object] = {
            "location": location,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "run_id": None,
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self._write()

    def record(self, run_id: str) -> None:
        self.info["run_id"] = run_id
        self._write()

    def _write(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps(self.info))
        tmp.replace(self.path)


def _lock_directory() -> Path:
    directory = get_settings().root / "locks"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _lock_paths(location: str) -> tuple[Path, Path]:
    directory = _lock_directory()
    key = hashlib.sha256(location.rstrip("/").encode()).hexdigest()[:24]
    return directory / f"{key}.lock", directory / f"{key}.holder.json"


def _describe(holder_path: Path) -> str:
    try:
        info = json.loads(holder_path.read_text())
    except (OSError, ValueError):
        return "another run (holder not yet recorded)"
    run = info.get("run_id") or "not yet created"
    return f"pid {info['pid']} on {info['host']} (MLflow run {run}, since {info['since']})"


@contextmanager
def hold_location(location: str) -> Iterator[Holder]:
    """Hold ``location`` for the duration, or raise ``LocationBusy`` at once."""
    lock_path, holder_path = _lock_paths(location)
    lock = FileLock(lock_path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise LocationBusy(
            f"output location {location} is in use by {_describe(holder_path)}; "
            "wait for that run to end or choose another --output"
        ) from None
    try:
        yield Holder(holder_path, location)
    finally:
        holder_path.unlink(missing_ok=True)  # before the release: the next holder's is theirs
        lock.release()


def fail_abandoned_runs(location: str) -> list[str]:
    """Mark FAILED the RUNNING runs at ``location``; only call while holding its lock."""
    experiment = configure()  # before the client: it reads the tracking URI once
    client = MlflowClient()
    runs = client.search_runs(
        [experiment],
        filter_string=f"tags.`{OUTPUT_TAG}` = '{location}' and attributes.status = 'RUNNING'",
    )
    for run in runs:
        client.set_tag(run.info.run_id, "shoal.abandoned", "process died while running")
        client.set_terminated(run.info.run_id, status="FAILED")
    return [run.info.run_id for run in runs]


def command_key(events: str, transactions: str, params: Mapping[str, Any]) -> str:
    """What makes two runs "the same command": their inputs and validated parameters.

    Local paths count by absolute path, so the same file named from another directory matches.
    """

    def absolute(uri: str) -> str:
        return uri if is_remote(uri) else os.path.abspath(os.path.expanduser(uri))

    text = json.dumps([absolute(events), absolute(transactions), params], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def unfinished_location(key: str) -> OutputLocation | None:
    """The newest default location of command ``key`` whose run did not finish, unpublished.

    Did not finish: RUNNING (its process died, or still lives: the lock tells) or FAILED.
    Only locations directly under today's output root qualify: it may have moved since.
    """
    experiment = configure()
    runs = MlflowClient().search_runs(
        [experiment],
        filter_string=f"tags.`{COMMAND_TAG}` = '{key}' and attributes.status != 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=100,
    )
    root = output_root()
    for run in runs:
        uri = run.data.tags.get(OUTPUT_TAG)
        if uri is None or Path(uri).parent != root:
            continue
        location = OutputLocation(uri)
        if not location.published:
            return location
    return None


def _reclaim(key: str, stack: ExitStack) -> tuple[OutputLocation, Holder] | None:
    """Hold the unfinished location of ``key`` on ``stack``; None when there is none to take."""
    location = unfinished_location(key)
    if location is None:
        return None
    held = ExitStack()
    try:
        holder = held.enter_context(hold_location(location.uri))
    except LocationBusy:
        return None  # its run is alive: this one starts a location of its own
    if location.published:  # that run published between the search and the lock
        held.close()
        return None
    stack.enter_context(held)
    return location, holder


@contextmanager
def claim_output(
    location: OutputLocation | None,
    run_name: str,
    tags: Mapping[str, str],
    published: bool = True,
    command: str | None = None,
) -> Iterator[tuple[str, OutputLocation]]:
    """Lock the location, close its abandoned runs, then open this run's MLflow run.

    Without a location the run resumes the unfinished location of its ``command`` key
    (:func:`command_key`, tagged on the run) when there is one it can lock; otherwise it gets
    ``<output root>/<run id>``, new by construction, so the MLflow run comes first; it is still
    locked, like every location a run writes. ``published``: the run will publish a staging
    directory there (``OutputLocation.publish``) rather than write into it, so a directory of
    someone else's files is refused up front.
    """
    with FileLock(_lock_directory() / "mlflow-store.lock"):
        # Two processes creating the embedded SQLite store at once race in its migrations
        # (measured: "Online migration expected to match one row"); later opens find it made.
        configure()
    with ExitStack() as stack:
        if location is None and command is not None:
            tags = {**tags, COMMAND_TAG: command}
            reclaimed = _reclaim(command, stack)
            if reclaimed is not None:
                location, holder = reclaimed
                fail_abandoned_runs(location.uri)
        elif location is not None:
            if published:
                location.check_publishable()
            holder = stack.enter_context(hold_location(location.uri))
            fail_abandoned_runs(location.uri)
        run_id = stack.enter_context(tracked_run(run_name, tags))
        if location is None:
            location = OutputLocation(str(output_root() / run_id))
            holder = stack.enter_context(hold_location(location.uri))
        holder.record(run_id)
        RunLogger(run_id).tags({OUTPUT_TAG: location.uri})
        yield run_id, location
