"""Prefect's temporary API started early: the flow then runs against that very server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

EARLY = """
from infra.settings import configure_environment
configure_environment()
from infra.embedded_api import start_embedded_api
ready = start_embedded_api()
from prefect import flow, get_client
from prefect.server.api.server import SubprocessASGIServer
ready()
server = SubprocessASGIServer()
import httpx
assert httpx.get(server.api_url + "/health").status_code == 200

@flow
def where() -> str:
    with get_client(sync_client=True) as client:
        return str(client.api_url)

print(where() == server.api_url.rstrip("/") + "/", len(SubprocessASGIServer._instances))
"""

CONFIGURED = """
from infra.embedded_api import start_embedded_api
from prefect.server.api.server import SubprocessASGIServer
start_embedded_api()()
print(len(SubprocessASGIServer._instances))
"""


def _python(code: str, tmp_path: Path, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    environ.update(SHOAL_HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT), **env)
    done = subprocess.run(
        [sys.executable, "-c", code], env=environ, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def test_the_flow_runs_against_the_server_started_early(tmp_path: Path) -> None:
    assert _python(EARLY, tmp_path) == "True 1"


def test_nothing_starts_when_an_api_is_configured(tmp_path: Path) -> None:
    assert _python(CONFIGURED, tmp_path, PREFECT_API_URL="http://127.0.0.1:9/api") == "0"
