"""The installed ``shoal`` on a terminal: each documented failure is one line on stderr.

Rejected input (2), an unreachable or refusing server (3) and a refused output (4) end with the
exit code and one line naming the file, column, URI or location; no traceback reaches the
terminal, nothing of the error reaches stdout. The traceback stays in the Prefect run's log,
and ``--verbose`` prints it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from tests.flows.shoal_process import REPO, shoal_env
from tests.run_logs import flow_run_logs

# The console script pip wrote beside this interpreter (``make test`` runs from that venv).
SHOAL = Path(sys.executable).parent / "shoal"

pytestmark = pytest.mark.skipif(not SHOAL.exists(), reason="shoal is not installed in this venv")


def shoal(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The installed console script, running this checkout's code."""
    return subprocess.run(
        [str(SHOAL), *args],
        cwd=REPO,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
    )


def assert_one_line(result: subprocess.CompletedProcess[str], code: int, *named: str) -> str:
    """Exit ``code``; one ``shoal:`` line on stderr holding ``named``, and nothing else of it."""
    assert result.returncode == code, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = result.stderr.strip().splitlines()
    (line,) = [line for line in lines if line.startswith("shoal: ")]
    for text in named:
        assert text in line, line
        assert text not in result.stdout
        assert sum(text in other for other in lines) == 1, result.stderr[-3000:]
    return line


def bare_env(tmp_path: Path) -> dict[str, str]:
    """No Prefect API, no MLflow server: only what the probes of exit code 3 need."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "MLFLOW_", "SHOAL_", "RAY_ADDRESS"))
    }
    return {**env, "SHOAL_HOME": str(tmp_path / "home")}


class Refusing(BaseHTTPRequestHandler):
    """An MLflow server behind authentication: ``/health`` answers, the rest is 401."""

    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 401)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def nothing_listening() -> Iterator[str]:
    """A loopback URI whose port is bound but not listening: connections are refused."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{bound.getsockname()[1]}"


@pytest.fixture
def refusing_server() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_an_unreachable_server_is_one_line_with_exit_code_3(tmp_path: Path) -> None:
    with nothing_listening() as uri:
        env = {**bare_env(tmp_path), "MLFLOW_TRACKING_URI": uri}
        result = shoal(["ingest", "--events", "e.csv", "--transactions", "t.csv"], env)
    line = assert_one_line(result, 3, uri)
    assert "cannot be reached" in line
    assert result.stderr.strip() == line, "nothing before the probe's verdict"


def test_refused_credentials_are_one_line_with_exit_code_3(
    tmp_path: Path, refusing_server: str
) -> None:
    env = {
        **bare_env(tmp_path),
        "MLFLOW_TRACKING_URI": refusing_server,
        "MLFLOW_TRACKING_TOKEN": "wrong-token-value",
    }
    result = shoal(["run", "--events", "e.csv", "--transactions", "t.csv"], env)
    line = assert_one_line(result, 3, refusing_server)
    assert "refused the credentials (HTTP 401)" in line and "cannot be reached" not in line
    assert "wrong-token-value" not in result.stderr


@pytest.fixture
def missing_column(tmp_path: Path) -> list[str]:
    """``ingest`` arguments whose events file lacks its ``event`` column."""
    events, transactions = tmp_path / "events.csv", tmp_path / "transactions.csv"
    events.write_text("txn_id,ts\nt0,2026-01-01T00:00:00Z\n")
    transactions.write_text("txn_id,ts,amount\nt0,2026-01-01T00:00:00Z,3.5\n")
    return ["ingest", "--events", str(events), "--transactions", str(transactions)]


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_rejected_input_is_one_line_with_exit_code_2_and_the_traceback_is_logged(
    tmp_path: Path, missing_column: list[str]
) -> None:
    env = shoal_env(tmp_path / "home", tmp_path / "runs")
    result = shoal(missing_column, env)
    line = assert_one_line(result, 2, "events.csv", "'event'")
    assert line.startswith("shoal: input rejected: ")
    logged = flow_run_logs()  # the latest failed run: this one
    assert "Traceback" in logged and "missing required column 'event'" in logged


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_a_refused_output_is_one_line_with_exit_code_4_and_verbose_shows_why(
    tmp_path: Path, missing_column: list[str]
) -> None:
    env = shoal_env(tmp_path / "home", tmp_path / "runs")
    elsewhere = str(tmp_path / "elsewhere")
    result = shoal([*missing_column, "--output", elsewhere], env)
    line = assert_one_line(result, 4, elsewhere)
    assert line.startswith("shoal: output refused: ")

    verbose = shoal(["--verbose", *missing_column, "--output", elsewhere], env)
    assert verbose.returncode == 4
    assert "Traceback" in verbose.stderr and "OutputError" in verbose.stderr
    assert line in verbose.stderr.splitlines()


def test_version_and_typed_options() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    version = subprocess.run([str(SHOAL), "--version"], env=env, capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("shoal ")
    for args, option in (
        (["retrain", "--events", "e", "--transactions", "t", "--end", "not-a-date"], "--end"),
        (["ingest", "--events", "e", "--transactions", "t", "--start", "2026-13-01"], "--start"),
        (["demo", "--generator", "nowhere"], "--generator"),
    ):
        result = subprocess.run([str(SHOAL), *args], env=env, capture_output=True, text=True)
        assert result.returncode == 2, result.stderr
        assert f"Invalid value for '{option}'" in result.stderr
        assert "Traceback" not in result.stderr and not result.stdout
