"""One run at a time per output location: a lock refused at once when taken.

The lock lives under ``<durable root>/locks`` (``SHOAL_HOME``, or ``SHOAL_STORAGE_URI`` in
cluster mode), named by a hash of the location (not inside the location: a run refused for bad
input must leave no trace there). On a disk it is ``flock(2)`` on a file, dropped by the kernel
when its holder dies, SIGKILL included. On S3 it is a lease object created only if absent
(``infra.lease``): every machine sees it, and a dead holder's lease runs out after
``SHOAL_LOCK_LEASE_S``. Either way a crashed run never blocks the rerun for long, and a second
run on a taken location fails at once, naming the location and its holder, instead of waiting:
a scheduler retries, a person reads who holds it. Without ``SHOAL_STORAGE_URI``, runs that
share a location from machines that do not share ``SHOAL_HOME`` are not seen.

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
import posixpath
import socket
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from mlflow.tracking import MlflowClient

from infra.lease import LeaseHeld, ObjectLease
from infra.settings import get_settings
from infra.storage import OutputError, OutputLocation, is_remote, runs_uri
from infra.tracking import RunLogger, configure, tracked_run

OUTPUT_TAG = "shoal.output"
COMMAND_TAG = "shoal.command"


class LocationBusy(OutputError):
    """Another live run holds the output location."""


class Holder:
    """Who holds a location: written with the lock so a refused run can name them."""

    def __init__(self, location: str, write: Callable[[dict[str, object]], None]) -> None:
        self._write = write
        self.info: dict[str, object] = {
            "location": location,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "run_id": None,
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }

    def record(self, run_id: str) -> None:
        """Name the holder's MLflow run, once it exists, where refused runs read it."""
        self.info["run_id"] = run_id
        self._write(self.info)


def _local_lock_directory() -> Path:
    directory = get_settings().root / "locks"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _lock_name(location: str) -> str:
    return hashlib.sha256(location.rstrip("/").encode()).hexdigest()[:24]


def _describe(info: Mapping[str, object] | None) -> str:
    if not info or "pid" not in info:
        return "another run (holder not yet recorded)"
    run = info.get("run_id") or "not yet created"
    return f"pid {info['pid']} on {info['host']} (MLflow run {run}, since {info['since']})"


def _busy(location: str, info: Mapping[str, object] | None) -> LocationBusy:
    return LocationBusy(
        f"output location {location} is in use by {_describe(info)}; "
        "wait for that run to end or choose another --output"
    )


@contextmanager
def hold_location(location: str) -> Iterator[Holder]:
    """Hold ``location`` for the duration, or raise ``LocationBusy`` at once."""
    settings = get_settings()
    if is_remote(settings.durable_root):
        with _hold_lease(location, settings.durable_root, settings.lock_lease_s) as holder:
            yield holder
        return
    directory = Path(settings.durable_root) / "locks"
    directory.mkdir(parents=True, exist_ok=True)
    with _hold_file_lock(location, directory) as holder:
        yield holder


@contextmanager
def _hold_file_lock(location: str, directory: Path) -> Iterator[Holder]:
    key = _lock_name(location)
    holder_path = directory / f"{key}.holder.json"
    lock = FileLock(directory / f"{key}.lock", timeout=0)
    try:
        lock.acquire()
    except Timeout:
        try:
            info = json.loads(holder_path.read_text())
        except (OSError, ValueError):
            info = None
        raise _busy(location, info) from None

    def write(info: dict[str, object]) -> None:
        tmp = holder_path.with_name(f".{holder_path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps(info))
        tmp.replace(holder_path)

    try:
        holder = Holder(location, write)
        write(holder.info)
        yield holder
    finally:
        holder_path.unlink(missing_ok=True)  # before the release: the next holder's is theirs
        lock.release()


@contextmanager
def _hold_lease(location: str, root: str, lease_s: float) -> Iterator[Holder]:
    lease = ObjectLease(f"{root}/locks/{_lock_name(location)}.json", lease_s)
    holder = Holder(location, lease.update)
    try:
        lease.acquire(holder.info)
    except LeaseHeld as held:
        raise _busy(location, held.info) from None
    try:
        yield holder
    finally:
        lease.release()


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
    root = runs_uri()
    for run in runs:
        uri = run.data.tags.get(OUTPUT_TAG)
        if uri is None or posixpath.dirname(uri) != root:
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
    if get_settings().tracking_uri.startswith("sqlite:"):
        # Two processes creating the embedded SQLite store at once race in its migrations
        # (measured: "Online migration expected to match one row"); later opens find it made.
        with FileLock(_local_lock_directory() / "mlflow-store.lock"):
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
            location = OutputLocation(posixpath.join(runs_uri(), run_id))
            holder = stack.enter_context(hold_location(location.uri))
        holder.record(run_id)
        RunLogger(run_id).tags({OUTPUT_TAG: location.uri})
        yield run_id, location
