"""Servers a test starts as subprocesses: wait until one answers, stop its process group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable

import httpx

# No server or client a test starts reports usage home.
NO_TELEMETRY = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
}
# The states after which a Prefect flow run changes no more.
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def wait_for(check: Callable[[], bool], what: str, timeout_s: float, procs: list) -> None:
    """Poll ``check`` each second until true; fail at once, with its log, if a process exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for name, proc, log in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({proc.returncode}): {log.read_text()[-3000:]}")
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(1)
    raise TimeoutError(f"{what} not ready after {timeout_s:.0f} s")


def http_ok(url: str) -> Callable[[], bool]:
    """Return a check that ``url`` answers 200."""
    return lambda: httpx.get(url, timeout=5).status_code == 200


def stop(proc: subprocess.Popen) -> None:
    """SIGINT the group (lets ``ray start --block`` and servers clean up), then SIGKILL it."""
    for sig, grace in ((signal.SIGINT, 10), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            continue
        with contextlib.suppress(ProcessLookupError):  # the leader is gone; children may linger
            os.killpg(proc.pid, signal.SIGKILL)
        return
