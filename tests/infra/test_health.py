from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from typer.testing import CliRunner

from infra.health import EngineUnreachable, check_engines
from infra.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Healthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path.endswith("/health") else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def healthy_server() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), Healthy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_an_unreachable_tracking_server_is_named() -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(EngineUnreachable, match=f"MLflow tracking server at {uri}/health"):
        check_engines(Settings(MLFLOW_TRACKING_URI=uri))


def test_an_unreachable_prefect_api_is_named(healthy_server: str) -> None:
    api = f"http://127.0.0.1:{free_port()}/api"
    settings = Settings(MLFLOW_TRACKING_URI=healthy_server, PREFECT_API_URL=api)
    with pytest.raises(EngineUnreachable, match=f"Prefect API at {api}/health"):
        check_engines(settings)


def test_answering_servers_and_embedded_engines_pass(healthy_server: str) -> None:
    check_engines(Settings(MLFLOW_TRACKING_URI=healthy_server, PREFECT_API_URL=healthy_server))
    check_engines(Settings(MLFLOW_TRACKING_URI=None, PREFECT_API_URL=None))


def test_the_cli_stops_before_any_work(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    from flows.cli import app
    from infra.settings import get_settings

    uri = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            app, ["run", "--events", "missing.parquet", "--transactions", "missing.parquet"]
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 3
    output = " ".join(result.output.split())  # rich wraps long lines
    assert uri in output and "cannot be reached" in output
