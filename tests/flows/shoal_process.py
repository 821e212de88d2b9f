"""``shoal`` commands as separate processes, sharing the test session's Prefect API."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def shoal_env(home: Path, root: Path) -> dict[str, str]:
    """A ``SHOAL_HOME`` and output root, pointed at the session's Prefect API.

    Call inside the ``prefect_harness`` fixture: sharing its server, as a deployment's processes
    would, spares each process a minute of start-up on 2 cores. Ray is each process's own
    (``RAY_ADDRESS=local``): a plain ``ray.init()`` may join another local cluster on the
    machine, whose busy CPUs then stall this process's training.
    """
    from prefect.settings import PREFECT_API_URL

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "MLFLOW_", "SHOAL_", "RAY_ADDRESS"))
    }
    env.update(
        SHOAL_HOME=str(home),
        SHOAL_OUTPUT_ROOT=str(root),
        PREFECT_API_URL=str(PREFECT_API_URL.value()),
        RAY_ADDRESS="local",
    )
    return env


def start_shoal(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``python -m flows.cli <args>`` in its own process group, output appended to ``log``."""
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "flows.cli", *args],
            cwd=REPO,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def finish(process: subprocess.Popen[bytes], log: Path, timeout_s: float = 480) -> None:
    code = process.wait(timeout=timeout_s)
    assert code == 0, log.read_text()[-4000:]


def hold_elsewhere(location: str, home: Path, run_id: str) -> subprocess.Popen[str]:
    """Another process that holds ``location`` (as run ``run_id``) until killed."""
    script = (
        "import time\n"
        "from infra.locks import hold_location\n"
        f"with hold_location({location!r}) as holder:\n"
        f"    holder.record({run_id!r})\n"
        "    print('held', flush=True)\n"
        "    time.sleep(600)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO,
        env={**os.environ, "SHOAL_HOME": str(home)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    return process
