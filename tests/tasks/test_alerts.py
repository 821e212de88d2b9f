"""Alerts through Apprise, each service's body checked by a local stand-in for the service.

Apprise's Slack and PagerDuty plugins post only to the public hosts, so each test points the
plugin's endpoint at a local server with ``monkeypatch``: ``NotifySlack.webhook_url`` (a class
attribute) and ``PAGERDUTY_API_LOOKUP`` (the module's table of regional endpoints). Nothing
else changes, so the body checked is exactly the one Apprise sends in production.

Each local server checks the body as its service documents it and answers as the service
does: Slack incoming webhooks 200 ``ok`` or 400 ``invalid_payload``
(https://api.slack.com/messaging/webhooks, https://api.slack.com/reference/messaging/attachments),
PagerDuty Events v2 202 or 400 ``invalid event``
(https://developer.pagerduty.com/docs/events-api-v2/trigger-events/), a generic JSON webhook
204 for any JSON object.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import apprise.plugins.pagerduty
import apprise.plugins.slack
import jsonschema
import pandas as pd
import pytest

from infra.notifications import (
    AlertConfigError,
    alert_message,
    apprise_url,
    notify,
    service_of,
)
from tests.run_logs import flow_run_logs

SLACK_HOOK = "https://hooks.slack.com/services/T0001/B0002/XXXXsecretXXXX"
PAGERDUTY_HOOK = "https://events.pagerduty.com/v2/enqueue"
ROUTING_KEY = "R0UT1NGKEY0123456789abcdef012345"
# A message needs text, blocks or attachments; each attachment shows a title, text or fields.
SLACK_SCHEMA = {
    "type": "object",
    "anyOf": [{"required": ["text"]}, {"required": ["blocks"]}, {"required": ["attachments"]}],
    "properties": {
        "text": {"type": "string", "minLength": 1},
        "mrkdwn": {"type": "boolean"},
        "blocks": {"type": "array", "maxItems": 50, "items": {"required": ["type"]}},
        "attachments": {
            "type": "array",
            "minItems": 1,
            "maxItems": 100,
            "items": {
                "type": "object",
                "anyOf": [
                    {"required": ["text"]},
                    {"required": ["title"]},
                    {"required": ["blocks"]},
                ],
                "properties": {
                    "title": {"type": "string"},
                    "text": {"type": "string", "minLength": 1, "maxLength": 40000},
                    "color": {
                        "type": "string",
                        "pattern": "^(good|warning|danger|#[0-9A-Fa-f]{6})$",
                    },
                    "footer": {"type": "string", "maxLength": 300},
                    "ts": {"type": ["number", "string"]},
                },
            },
        },
    },
}
PAGERDUTY_SCHEMA = {
    "type": "object",
    "required": ["routing_key", "event_action", "payload"],
    "additionalProperties": False,
    "properties": {
        "routing_key": {"type": "string", "minLength": 32, "maxLength": 32},
        "event_action": {"enum": ["trigger", "acknowledge", "resolve"]},
        "dedup_key": {"type": "string", "maxLength": 255},
        "client": {"type": "string"},
        "client_url": {"type": "string"},
        "images": {"type": "array", "items": {"required": ["src"]}},
        "links": {"type": "array", "items": {"required": ["href"]}},
        "payload": {
            "type": "object",
            "required": ["summary", "source", "severity"],
            "additionalProperties": False,
            "properties": {
                "summary": {"type": "string", "minLength": 1, "maxLength": 1024},
                "source": {"type": "string", "minLength": 1},
                "severity": {"enum": ["critical", "error", "warning", "info"]},
                "timestamp": {"type": "string"},
                "component": {"type": "string"},
                "group": {"type": "string"},
                "class": {"type": "string"},
                "custom_details": {"type": "object"},
            },
        },
    },
}
JSON_SCHEMA = {"type": "object"}
SERVICES = {
    # service: (schema, accepted status and body, rejected status and body)
    "slack": (SLACK_SCHEMA, (200, b"ok"), (400, b"invalid_payload")),
    "pagerduty": (
        PAGERDUTY_SCHEMA,
        (202, b'{"status":"success","message":"Event processed"}'),
        (400, b'{"status":"invalid event","message":"Event object is invalid"}'),
    ),
    "json": (JSON_SCHEMA, (204, b""), (400, b"")),
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
def service(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local stand-in for ``request.param``'s service, where Apprise's plugin posts.

    Yields the operator's ``SHOAL_ALERT_WEBHOOK`` for that service and the bodies received.
    """
    name = request.param
    schema, accepted, rejected = SERVICES[name]
    paths = {"slack": "/services/T0001/B0002/XXXXsecretXXXX", "pagerduty": "/v2/enqueue"}
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append(body)
            try:
                assert self.headers["Content-Type"].startswith("application/json")
                assert self.path.split("?")[0] == paths.get(name, "/hook"), self.path
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
    local = f"http://127.0.0.1:{server.server_port}"
    monkeypatch.setattr(apprise.plugins.slack.NotifySlack, "webhook_url", f"{local}/services")
    monkeypatch.setitem(
        apprise.plugins.pagerduty.PAGERDUTY_API_LOOKUP, "us", local + paths["pagerduty"]
    )
    hooks = {
        "slack": SLACK_HOOK,
        "pagerduty": PAGERDUTY_HOOK,
        "json": f"{local}/hook?token=t0k3n5ecret",
    }
    yield hooks[name], received
    server.shutdown()
    server.server_close()


def records(n: int) -> list[dict[str, Any]]:
    return json.loads(alerts(n).to_json(orient="records"))


@pytest.mark.parametrize("service", list(SERVICES), indirect=True)
@pytest.mark.parametrize("n_alerts", [1, 80])
def test_each_service_accepts_its_body(
    service: tuple[str, list[dict[str, Any]]], n_alerts: int, request: pytest.FixtureRequest
) -> None:
    hook, received = service
    url = apprise_url(hook, ROUTING_KEY)
    name = service_of(url)
    assert name == request.node.callspec.params["service"]
    delivery = notify(url, *alert_message(name, "run-7", records(n_alerts)))
    assert delivery.delivered, delivery.warnings
    (body,) = received
    text = json.dumps(body)
    assert "run run-7" in text and f"{n_alerts} new risky cluster(s)" in text
    if name == "pagerduty":
        assert body["routing_key"] == ROUTING_KEY and body["payload"]["severity"] == "warning"
        assert body["payload"]["source"] == "shoal"
    else:
        assert "fraud share 0.92" in text and "amount" in text
        assert ("more in the run's Prefect artifact" in text) == (n_alerts > 20)


@pytest.mark.parametrize("service", ["slack"], indirect=True)
def test_a_body_the_service_rejects_is_a_failed_delivery(
    service: tuple[str, list[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    """Apprise's generic JSON body, posted to the Slack stand-in: no text, refused."""
    _, received = service
    slack_server = apprise.plugins.slack.NotifySlack.webhook_url.removesuffix("/services")
    url = apprise_url(slack_server + "/services/T0001/B0002/XXXXsecretXXXX")
    assert url.startswith("json://")
    with caplog.at_level(logging.DEBUG):
        delivery = notify(url, "title", "body")
    assert not delivery.delivered and len(received) == 1
    (warning,) = delivery.warnings
    assert "error=400" in warning
    for secret in ("XXXXsecretXXXX", slack_server.removeprefix("http://")):
        assert secret not in warning and secret not in caplog.text


@pytest.mark.parametrize("service", list(SERVICES), indirect=True)
def test_no_url_or_key_reaches_any_log_even_at_debug(
    service: tuple[str, list[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    """Apprise logs URLs, payloads and keys at INFO and DEBUG, urllib3 the request's path."""
    hook, received = service
    url = apprise_url(hook, ROUTING_KEY)
    with caplog.at_level(logging.DEBUG):
        delivery = notify(url, *alert_message(service_of(url), "run-7", records(2)))
    assert delivery.delivered and received
    for secret in ("XXXXsecretXXXX", ROUTING_KEY, "t0k3n5ecret"):
        assert secret not in caplog.text


def test_an_unreachable_service_is_a_warning_without_its_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    down = "http://127.0.0.1:9/v2/enqueue"  # nothing listens on 9
    monkeypatch.setitem(apprise.plugins.pagerduty.PAGERDUTY_API_LOOKUP, "us", down)
    delivery = notify(f"pagerduty://{ROUTING_KEY}@MixedCaseApiKey0123", "", "summary")
    assert not delivery.delivered
    (warning,) = delivery.warnings
    assert "Connection error" in warning, warning
    assert "MixedCaseApiKey0123" not in warning and ROUTING_KEY not in warning


def test_plain_addresses_become_apprise_urls() -> None:
    assert apprise_url(SLACK_HOOK) == SLACK_HOOK  # Apprise reads Slack's own address
    assert service_of(SLACK_HOOK) == "slack"
    pagerduty = apprise_url("https://events.eu.pagerduty.com/v2/enqueue", ROUTING_KEY)
    assert pagerduty.startswith(f"pagerduty://{ROUTING_KEY}@") and "region=eu" in pagerduty
    generic = apprise_url("https://user:pw@tickets.internal:8443/hook?token=a%2Fb")
    assert generic == "jsons://user:pw@tickets.internal:8443/hook?-token=a%2Fb"
    assert apprise_url("http://tickets.internal") == "json://tickets.internal/"
    assert apprise_url("discord://1234/abcd") == "discord://1234/abcd"
    with pytest.raises(AlertConfigError, match="SHOAL_ALERT_ROUTING_KEY"):
        apprise_url(PAGERDUTY_HOOK, None)
    with pytest.raises(AlertConfigError) as refused:
        service_of("nosuchservice://XXXXsecretXXXX")
    assert "XXXXsecretXXXX" not in str(refused.value)


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("service", ["slack"], indirect=True)
def test_the_task_never_logs_the_webhook_url(
    service: tuple[str, list[Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect import flow

    from infra.settings import get_settings
    from tasks.alerts import alert

    hook, received = service
    down = "http://127.0.0.1:9/services/T0001/B0002/XXXXsecretXXXX"  # nothing listens on 9

    @flow
    def alerting() -> dict[str, Any]:
        return alert("run-9", alerts(2))

    outcomes = []
    for webhook in (hook, down):
        monkeypatch.setenv("SHOAL_ALERT_WEBHOOK", webhook)
        get_settings.cache_clear()
        state = alerting(return_state=True)
        outcomes.append((state.result(), flow_run_logs(state.state_details.flow_run_id)))
    get_settings.cache_clear()
    assert [outcome["notified"] for outcome, _ in outcomes] == [True, False]
    assert len(received) == 1 and "run run-9" in received[0]["attachments"][0]["title"]
    logged = "\n".join(logs for _, logs in outcomes)
    assert "ALERT new risky cluster 1" in logged
    assert "alert notification (json): A Connection error" in logged
    assert "alert notification (json) failed" in logged
    for secret in (hook, down, "XXXXsecretXXXX", "127.0.0.1:9"):
        assert secret not in logged
