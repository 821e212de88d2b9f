"""Credentials in URIs, query strings and the environment are masked wherever Shoal records text."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import quote

import pytest
from mlflow.tracking import MlflowClient

from catalog.datasets import Catalog
from infra.redact import MASK, install_log_redaction, redact, redact_value, userinfo_password

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYzEXAMPLEKEY"


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (f"s3://AKIAEXAMPLE:{SECRET}@lake/events/", "s3://***@lake/events/"),
        ("https://analyst:hunter2pass@host:8443/t.csv", "https://***@host:8443/t.csv"),
        (
            "https://lake.s3.amazonaws.com/t.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            "&X-Amz-Credential=AKIAEXAMPLE%2F20261126&X-Amz-Signature=deadbeefcafe",
            "https://lake.s3.amazonaws.com/t.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            "&X-Amz-Credential=***&X-Amz-Signature=***",
        ),
        ("https://host/t.csv?token=abc123&page=2", "https://host/t.csv?token=***&page=2"),
        ("https://acct.blob.core.windows.net/c/t.csv?sv=2024&sig=xyz%3D", "sig=***"),
        ("reading s3://lake/t.csv and https://u:p4ss@h/x", "s3://lake/t.csv and https://***@h/x"),
    ],
)
def test_credentials_in_uris_are_masked(text: str, kept: str) -> None:
    clean = redact(text)
    assert kept in clean
    for secret in (SECRET, "hunter2pass", "deadbeefcafe", "abc123", "xyz%3D", "p4ss"):
        assert secret not in clean


@pytest.mark.parametrize(
    ("uri", "has_password"),
    [
        (f"s3://AKIAEXAMPLE:{SECRET}@lake/events/", True),  # a "/" inside the secret
        ("https://analyst:hunter2pass@host:8443/t.csv", True),
        ("https://analyst@host/t.csv", False),  # a user name alone
        ("http://analyst:@host/t.csv", False),  # an empty password
        ("https://host:8443/people/ann@example.com/t.csv", False),  # a port, then an @ in the path
        ("https://host/t.csv?token=abc123", False),  # a signed query: masked, not refused
        ("/data/ann@example.com:2/t.csv", False),
    ],
)
def test_a_password_in_the_user_info_is_told_apart(uri: str, has_password: bool) -> None:
    assert userinfo_password(uri) is has_password


@pytest.mark.parametrize(
    "text",
    [
        "/data/lake/events/part=0/data.parquet",
        "s3://lake/designs/t.csv?versionId=3",
        "https://host/x?email=a@b.com",
        "cluster 3: email domain is guerrillamail.com, amount at most 4.08",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_secret_environment_values_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "s3cr3t-pw")
    monkeypatch.setenv("SHOAL_HOME", "/tmp/not-a-secret")
    text = f"key={SECRET} pw=s3cr3t-pw home=/tmp/not-a-secret"
    assert redact(text) == f"key={MASK} pw={MASK} home=/tmp/not-a-secret"
    assert redact_value({"a": [text], "n": 3}) == {"a": [redact(text)], "n": 3}


@pytest.mark.parametrize(
    "name",
    [
        "SHOAL_ALERT_WEBHOOK",
        "SHOAL_ALERT_ROUTING_KEY",
        "PREFECT_API_KEY",
        "PREFECT_API_AUTH_STRING",
        "MLFLOW_TRACKING_TOKEN",
        "SLACK_WEBHOOK_URL",
    ],
)
def test_webhook_and_token_variables_are_secrets(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    value = "https://hooks.slack.com/services/T0001/B0002/XXXXsecretXXXX"
    monkeypatch.setenv(name, value)
    assert redact(f"posting to {value} failed") == f"posting to {MASK} failed"


def test_log_records_are_redacted_whatever_the_logger(caplog: pytest.LogCaptureFixture) -> None:
    install_log_redaction()
    install_log_redaction()  # idempotent: one wrapping factory
    uri = f"s3://AKIAEXAMPLE:{SECRET}@lake/t.csv"
    with caplog.at_level(logging.INFO):
        logging.getLogger("prefect.flow_runs").info("run writes to %s", uri)
        try:
            raise OSError(f"{uri}: connection reset")
        except OSError:
            logging.getLogger("shoal.io").exception("read failed")
    assert len(caplog.records) == 2
    assert SECRET not in caplog.text and "s3://***@lake/t.csv" in caplog.text


def test_people_facing_outputs_are_redacted_data_is_not(tmp_path: Path) -> None:
    catalog = Catalog(str(tmp_path))
    uri = f"https://analyst:{SECRET}@host/t.csv"
    catalog.save_json("summary", {"input": uri})
    catalog.save_text("report", f"<p>{uri}</p>")
    catalog.save_json("vocabulary", [uri])  # data: a token must round-trip exactly
    assert SECRET not in (tmp_path / "summary.json").read_text()
    assert SECRET not in (tmp_path / "report.html").read_text()
    assert catalog.load_json("vocabulary") == [uri]


def test_mlflow_params_tags_datasets_and_records_are_redacted(shoal_home: Path) -> None:
    from infra.tracking import RunLogger, tracked_run

    uri = f"s3://AKIAEXAMPLE:{SECRET}@lake/t.csv"
    presigned = "https://h/t.csv?X-Amz-Signature=deadbeefcafe"
    with tracked_run("redaction") as run_id:
        tracker = RunLogger(run_id)
        tracker.params({"transactions": uri, "nested": {"events": presigned}})
        tracker.tags({"source": uri})
        tracker.dataset(uri, "transactions", "abc", "input", 3)
        tracker.json({"inputs": [uri]}, "records/lineage.json")
        tracker.text(f"read {presigned}", "records/notes.txt")
    client = MlflowClient()
    run = client.get_run(run_id)
    recorded = [
        *run.data.params.values(),
        *run.data.tags.values(),
        *(d.dataset.source for d in run.inputs.dataset_inputs),
        client.download_artifacts(run_id, "records/lineage.json"),
    ]
    recorded[-1] = Path(recorded[-1]).read_text()
    recorded.append(Path(client.download_artifacts(run_id, "records/notes.txt")).read_text())
    text = "\n".join(recorded)
    assert SECRET not in text and "deadbeefcafe" not in text
    assert run.data.params["transactions"] == "s3://***@lake/t.csv"
    assert run.data.params["nested.events"] == "https://h/t.csv?X-Amz-Signature=***"


def test_an_unreachable_server_is_named_without_its_password() -> None:
    import socket

    from infra.health import EngineUnreachable, check_engines
    from infra.settings import Settings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    password = quote(SECRET, safe="")  # as it must be written in a URL
    uri = f"http://admin:{password}@127.0.0.1:{port}"
    with pytest.raises(EngineUnreachable, match=f"http://\\*\\*\\*@127.0.0.1:{port}") as err:
        check_engines(Settings(MLFLOW_TRACKING_URI=uri))
    assert password not in str(err.value)


def test_a_server_behind_basic_auth_is_probed_with_the_uri_credentials() -> None:
    import base64
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from infra.health import check_engines
    from infra.settings import Settings

    expected = "Basic " + base64.b64encode(f"admin:{SECRET}".encode()).decode()

    class Guarded(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.headers.get("Authorization") == expected else 500)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Guarded)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        check_engines(
            Settings(MLFLOW_TRACKING_URI=f"http://admin:{quote(SECRET, safe='')}@127.0.0.1:{port}")
        )
    finally:
        server.shutdown()
        server.server_close()
