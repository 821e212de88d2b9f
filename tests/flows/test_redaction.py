"""Credentials come from the environment and are recorded nowhere: MLflow, outputs, Prefect.

The inputs are served over HTTP with basic auth on 127.0.0.1; the run names them by plain URLs
and the password is in a netrc file named by ``$NETRC``, which fsspec's aiohttp session reads
(``infra.credentials``), so the run can only succeed if that credential was used. A URI with
the password in it is refused by every flow before any work, and the refused run's parameters
stored by Prefect are redacted.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import io
import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from catalog.synthetic import generate_shop
from flows.cli import app
from infra.credentials import CredentialInParameter
from tests.flows.tiny import tiny_params

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness", "local_ray")]

USER, SECRET = "analyst", "Pa55w0rd-4d2f9e1b"


class BasicAuthFiles(SimpleHTTPRequestHandler):
    """Static files for requests with the right credentials only, with byte ranges.

    Ingest reads Parquet row group by row group, as from any object store or web server
    (which all answer ``Range``); Python's plain handler would not.
    """

    expected = "Basic " + base64.b64encode(f"{USER}:{SECRET}".encode()).decode()

    def send_head(self) -> Any:
        if self.headers.get("Authorization") != self.expected:
            self.send_error(401)
            return None
        wanted = self.headers.get("Range", "")
        path = Path(self.translate_path(self.path))
        if not wanted.startswith("bytes=") or not path.is_file():
            return super().send_head()
        data = path.read_bytes()
        first, _, last = wanted[len("bytes=") :].partition("-")
        start = int(first) if first else max(0, len(data) - int(last))
        end = min(int(last), len(data) - 1) if first and last else len(data) - 1
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        return io.BytesIO(data[start : end + 1])

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The files' base URL, with the credentials for it in the netrc file ``$NETRC`` names."""
    folder = tmp_path_factory.mktemp("served")
    generate_shop(folder, n_transactions=600, seed=4)
    netrc = tmp_path_factory.mktemp("netrc") / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login {USER} password {SECRET}\n")
    netrc.chmod(0o600)
    handler = functools.partial(BasicAuthFiles, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("NETRC", str(netrc))
        yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def with_password(url: str) -> str:
    return url.replace("http://", f"http://{USER}:{SECRET}@")


async def stored_parameters(flow_run_ids: list[str] | None = None) -> list[dict[str, Any]]:
    """The parameters Prefect stored for these flow runs (all of the session's when None)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    run_filter = FlowRunFilter(id=FlowRunFilterId(any_=flow_run_ids)) if flow_run_ids else None
    async with get_client() as client:
        runs = await client.read_flow_runs(flow_run_filter=run_filter, limit=200)
    return [run.parameters for run in runs]


@pytest.fixture(scope="module")
def credentialed_run(served: str) -> Iterator[dict[str, Any]]:
    from flows.fraud_clustering import fraud_clustering

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    root = logging.getLogger()
    root.addHandler(handler)
    for name in ("prefect", "shoal"):  # Prefect's loggers do not propagate to the root
        logging.getLogger(name).addHandler(handler)
    try:
        summary = fraud_clustering(
            f"{served}/events.parquet", f"{served}/transactions.parquet", params=tiny_params()
        )
    finally:
        for logger in (root, logging.getLogger("prefect"), logging.getLogger("shoal")):
            logger.removeHandler(handler)
    yield {"summary": summary, "logs": records}


def test_the_credential_was_really_used(served: str, credentialed_run: dict[str, Any]) -> None:
    counts = credentialed_run["summary"]["ingest"]["transactions"]
    assert counts["rows_in"] == counts["accepted"] + counts["quarantined"] == 600
    with pytest.raises(urllib.error.HTTPError, match="401"):
        urllib.request.urlopen(f"{served}/transactions.parquet", timeout=10)


def test_no_credential_in_mlflow(credentialed_run: dict[str, Any], tmp_path: Path) -> None:
    client = MlflowClient()
    run = client.get_run(credentialed_run["summary"]["run_id"])
    recorded = [
        *run.data.params.values(),
        *run.data.tags.values(),
        *(d.dataset.source for d in run.inputs.dataset_inputs),
    ]
    assert any("http://127.0.0.1:" in value for value in recorded)
    assert not [value for value in recorded if SECRET in value]
    local = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path)))
    leaked = [p for p in local.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert not leaked, leaked


def test_no_credential_in_the_outputs(credentialed_run: dict[str, Any]) -> None:
    out = Path(credentialed_run["summary"]["output"])
    for name in ("summary.json", "report.html", "quarantine.parquet", "lineage.json"):
        assert SECRET.encode() not in (out / name).read_bytes(), name


def test_no_credential_in_logs(credentialed_run: dict[str, Any]) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    lines = [r.getMessage() for r in credentialed_run["logs"]]
    assert lines and not [line for line in lines if SECRET in line]
    run = MlflowClient().get_run(credentialed_run["summary"]["run_id"])
    flow_run_id = run.data.tags["prefect.flow_run_id"]

    async def prefect_logs() -> list[str]:
        async with get_client() as client:
            logs = await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
            )
        return [log.message for log in logs]

    messages = asyncio.run(prefect_logs())
    assert messages and not [m for m in messages if SECRET in m]


def test_no_credential_in_the_prefect_parameters(
    served: str, credentialed_run: dict[str, Any]
) -> None:
    run = MlflowClient().get_run(credentialed_run["summary"]["run_id"])
    (stored,) = asyncio.run(stored_parameters([run.data.tags["prefect.flow_run_id"]]))
    assert stored["events"] == f"{served}/events.parquet"
    assert SECRET not in json.dumps(stored)


def test_a_password_in_a_uri_is_refused_before_any_work(served: str) -> None:
    from flows.fraud_clustering import fraud_clustering

    state = fraud_clustering(
        f"{served}/events.parquet",
        with_password(f"{served}/transactions.parquet"),
        params=tiny_params(),
        return_state=True,
    )
    error = state.result(raise_on_failure=False)
    assert isinstance(error, CredentialInParameter)
    message = str(error)
    assert message.startswith(f"transactions {served.replace('//', '//***@')}/transactions")
    assert "netrc" in message and SECRET not in message
    (stored,) = asyncio.run(stored_parameters([str(state.state_details.flow_run_id)]))
    assert stored["transactions"] == f"http://***@{served[len('http://') :]}/transactions.parquet"
    assert SECRET not in json.dumps(stored)


@pytest.mark.parametrize("command", ["run", "ingest", "retrain", "score", "sweep"])
def test_every_command_rejects_a_password_in_a_uri_with_exit_code_2(
    served: str, command: str
) -> None:
    args = [command, "--events", with_password(f"{served}/events.parquet")]
    args += ["--transactions", f"{served}/transactions.parquet"]
    args += ["--space", "space.yaml"] if command == "sweep" else []
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert "input rejected: events http://***@127.0.0.1" in said and "netrc" in said, said
    assert SECRET not in result.output
    every_run = asyncio.run(stored_parameters())
    assert every_run and not [p for p in every_run if SECRET in json.dumps(p)]
