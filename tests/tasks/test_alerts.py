"""Alert bodies that Slack, PagerDuty and a generic JSON webhook accept, posted to a local server.

Each local server checks the body as its service documents it and answers as the service
does: Slack incoming webhooks 200 ``ok`` or 400 ``invalid_payload``
(https://api.slack.com/messaging/webhooks, https://api.slack.com/reference/block-kit/blocks),
PagerDuty Events v2 202 or 400 ``invalid event``
(https://developer.pagerduty.com/docs/events-api-v2/trigger-events/).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import jsonschema
import pandas as pd
import pytest

from infra.webhooks import WebhookKind, alert_payload, post_json, webhook_kind
from tests.run_logs import flow_run_logs

SLACK_SCHEMA = {
    "type": "object",
    "required": ["text"],
    "properties": {
        "text": {"type": "string", "minLength": 1},
        "blocks": {
            "type": "array",
            "maxItems": 50,
            "items": {
                "type": "object",
                "required": ["type"],
                "properties": {
                    "type": {"enum": ["section", "context", "header", "divider"]},
                    "text": {
                        "type": "object",
                        "required": ["type", "text"],
                        "properties": {
                            "type": {"enum": ["mrkdwn", "plain_text"]},
                            "text": {"type": "string", "minLength": 1, "maxLength": 3000},
                        },
                    },
                    "elements": {"type": "array", "maxItems": 10},
                },
            },
        },
    },
}
PAGERDUTY_SCHEMA = {
    "type": "object",
    "required": ["routing_key", "event_action", "payload"],
    "properties": {
        "routing_key": {"type": "string", "minLength": 1},
        "event_action": {"enum": ["trigger", "acknowledge", "resolve"]},
        "dedup_key": {"type": "string", "maxLength": 255},
        "payload": {
            "type": "object",
            "required": ["summary", "source", "severity"],
            "properties": {
                "summary": {"type": "string", "minLength": 1, "maxLength": 1024},
                "source": {"type": "string", "minLength": 1},
                "severity": {"enum": ["critical", "error", "warning", "info"]},
                "component": {"type": "string"},
                "custom_details": {"type": "object"},
            },
        },
    },
}
JSON_SCHEMA = {
    "type": "object",
    "required": ["run_id", "summary", "alerts"],
    "properties": {"alerts": {"type": "array", "items": {"required": ["cluster", "why"]}}},
}
SERVICES = {
    # kind: (schema, accepted status and body, rejected status and body)
    WebhookKind.slack: (SLACK_SCHEMA, (200, b"ok"), (400, b"invalid_payload")),
    WebhookKind.pagerduty: (
        PAGERDUTY_SCHEMA,
        (202, b'{"status":"success","message":"Event processed"}'),
        (400, b'{"status":"invalid event","message":"Event object is invalid"}'),
    ),
    WebhookKind.json: (JSON_SCHEMA, (204, b""), (400, b"")),
}


def alerts(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "cluster": range(n),
            "status": "new",
            "previous": -1,
            "size": 40,
            "previous_size": 0,
            "why": "fraud share 0.92 among labelled transactions",
            "rules": "amount > 480 AND n_events <= 4",
        }
    )


@pytest.fixture
def service(request: pytest.FixtureRequest) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local stand-in for the service named by the test's ``kind``: validates, answers."""
    schema, accepted, rejected = SERVICES[request.param]
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append(body)
            try:
                assert self.headers["Content-Type"] == "application/json"
                jsonschema.validate(body, schema)
                status, answer = accepted
            except (AssertionError, jsonschema.ValidationError):
                status, answer = rejected
            self.send_response(status)
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("service", list(WebhookKind), indirect=True)
@pytest.mark.parametrize("n_alerts", [1, 80])
def test_each_service_accepts_its_body(
    service: tuple[str, list[dict[str, Any]]], n_alerts: int, request: pytest.FixtureRequest
) -> None:
    url, received = service
    kind = WebhookKind(request.node.callspec.params["service"])
    records = json.loads(alerts(n_alerts).to_json(orient="records"))
    payload = alert_payload(kind, "run-7", records, routing_key="R0UT1NGKEY0123456789abcdef012345")
    status = post_json(url, payload)
    assert status == SERVICES[kind][1][0]
    (body,) = received
    text = json.dumps(body)
    assert "run-7" in text and "fraud share 0.92" in text


@pytest.mark.parametrize("service", [WebhookKind.slack], indirect=True)
def test_a_body_the_service_rejects_is_an_error(service: tuple[str, list[Any]]) -> None:
    import urllib.error

    url, _ = service
    with pytest.raises(urllib.error.HTTPError, match="400"):
        post_json(url, {"run_id": "r1", "alerts": []})  # the generic body: no "text"


def test_the_kind_follows_the_host_unless_declared() -> None:
    assert webhook_kind("https://hooks.slack.com/services/T/B/X") is WebhookKind.slack
    assert webhook_kind("https://events.pagerduty.com/v2/enqueue") is WebhookKind.pagerduty
    assert webhook_kind("https://tickets.internal/hook") is WebhookKind.json
    assert webhook_kind("http://127.0.0.1:9/x", "PagerDuty".lower()) is WebhookKind.pagerduty
    with pytest.raises(ValueError, match="SHOAL_ALERT_ROUTING_KEY"):
        alert_payload(WebhookKind.pagerduty, "r1", [], routing_key=None)


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("service", [WebhookKind.slack], indirect=True)
def test_the_task_never_logs_the_webhook_url(
    service: tuple[str, list[Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect import flow

    from infra.settings import get_settings
    from tasks.alerts import alert

    url, received = service
    down = "http://127.0.0.1:9/services/T0001/B0002/XXXXsecretXXXX"  # nothing listens on 9

    @flow
    def alerting() -> dict[str, Any]:
        return alert("run-9", alerts(2))

    monkeypatch.setenv("SHOAL_ALERT_FORMAT", "slack")
    outcomes = []
    for webhook in (url, down):
        monkeypatch.setenv("SHOAL_ALERT_WEBHOOK", webhook)
        get_settings.cache_clear()
        state = alerting(return_state=True)
        outcomes.append((state.result(), flow_run_logs(state.state_details.flow_run_id)))
    get_settings.cache_clear()
    assert [outcome["webhook_status"] for outcome, _ in outcomes] == [200, -1]
    assert len(received) == 1 and received[0]["text"].startswith("Shoal: 2 new risky")
    logged = "\n".join(logs for _, logs in outcomes)
    assert "ALERT new risky cluster 1" in logged and "alert webhook (slack) failed" in logged
    for secret in (url, down, "XXXXsecretXXXX", "127.0.0.1:9"):
        assert secret not in logged
