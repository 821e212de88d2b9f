from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest
from typer.testing import CliRunner

from infra.health import CredentialsRefused, EngineUnreachable, check_engines
from infra.settings import Settings
from tests.ports import free_port


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


class Guarded(BaseHTTPRequestHandler):
    """``/health`` open to all, as both servers do; every other route needs ``expected``."""

    expected = ""
    seen: ClassVar[list[tuple[str, str | None]]] = []

    def do_GET(self) -> None:
        sent = self.headers.get("Authorization")
        self.seen.append((self.path, sent))
        allowed = self.path.endswith("/health") or sent == self.expected
        self.send_response(200 if allowed else 401)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def guarded_server() -> Iterator[str]:
    Guarded.seen = []
    server = HTTPServer(("127.0.0.1", 0), Guarded)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"MLFLOW_TRACKING_TOKEN": "tok-123456"}, "Bearer tok-123456"),
        (
            {"MLFLOW_TRACKING_USERNAME": "ana", "MLFLOW_TRACKING_PASSWORD": "pw-123456"},
            "Basic YW5hOnB3LTEyMzQ1Ng==",
        ),
    ],
)
def test_the_mlflow_probe_sends_the_configured_credentials(
    guarded_server: str, monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], expected: str
) -> None:
    Guarded.expected = expected
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    check_engines(Settings(MLFLOW_TRACKING_URI=guarded_server))
    assert [path for path, sent in Guarded.seen if sent == expected] == [
        "/health",
        "/api/2.0/mlflow/experiments/get-by-name?experiment_name=shoal",
    ]


def test_the_prefect_probe_sends_the_api_key(guarded_server: str) -> None:
    from prefect.settings import PREFECT_API_KEY, temporary_settings

    Guarded.expected = "Bearer pnu_key123456"
    with temporary_settings({PREFECT_API_KEY: "pnu_key123456"}):
        check_engines(Settings(MLFLOW_TRACKING_URI=None, PREFECT_API_URL=f"{guarded_server}/api"))
    assert Guarded.seen == [
        ("/api/health", "Bearer pnu_key123456"),
        ("/api/admin/version", "Bearer pnu_key123456"),
    ]


@pytest.mark.parametrize("engine", ["mlflow", "prefect"])
def test_refused_credentials_are_not_called_unreachable(
    guarded_server: str, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    from prefect.settings import PREFECT_API_KEY, temporary_settings

    Guarded.expected = "Bearer the-right-one"
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "a-wrong-one")
    settings = (
        Settings(MLFLOW_TRACKING_URI=guarded_server)
        if engine == "mlflow"
        else Settings(MLFLOW_TRACKING_URI=None, PREFECT_API_URL=guarded_server)
    )
    with (
        temporary_settings({PREFECT_API_KEY: "a-wrong-one"}),
        pytest.raises(CredentialsRefused, match=r"refused the credentials \(HTTP 401\)") as err,
    ):
        check_engines(settings)
    assert guarded_server in str(err.value) and "cannot be reached" not in str(err.value)
    assert "a-wrong-one" not in str(err.value)
