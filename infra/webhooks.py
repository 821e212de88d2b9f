"""Alert bodies as Slack, PagerDuty and a generic JSON webhook document them, and their POST.

Apprise (installed with Prefect) would format Slack and PagerDuty too, but only towards their
public hosts and, for PagerDuty, only with a REST API key besides the routing key; Events v2
needs the routing key alone, and a relay or a test server must be reachable too. So the bodies
are built here, each to its service's documented schema:

- Slack incoming webhook (https://api.slack.com/messaging/webhooks): ``{"text": …}``, the
  notification's fallback, plus ``blocks`` (at most 50; a section's text at most 3000 chars).
- PagerDuty Events API v2 (https://developer.pagerduty.com/api-reference/368ae3d938c9e-send-an-event-to-pager-duty):
  ``{"routing_key", "event_action": "trigger", "dedup_key", "payload": {"summary" (at most
  1024 chars), "source", "severity", "custom_details"}}``.
- Any other URL: ``{"run_id", "summary", "alerts": [...]}``.

The kind follows the URL's host (``hooks.slack.com``, ``events.pagerduty.com``) unless
``SHOAL_ALERT_FORMAT`` names it. The URL is a secret (a Slack webhook URL is its own key): it
is never written to a log or an error message.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

SLACK_MAX_BLOCKS = 50
SLACK_MAX_SECTION_CHARS = 3000
PAGERDUTY_MAX_SUMMARY_CHARS = 1024


class WebhookKind(StrEnum):
    """The payload schemas Shoal can post."""

    slack = "slack"
    pagerduty = "pagerduty"
    json = "json"


def webhook_kind(url: str, declared: str | None = None) -> WebhookKind:
    """Return the declared kind, else the one the URL's host implies, else generic JSON."""
    if declared:
        return WebhookKind(declared.lower())
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    if host in ("hooks.slack.com", "hooks.slack-gov.com"):
        return WebhookKind.slack
    if host.endswith("pagerduty.com"):
        return WebhookKind.pagerduty
    return WebhookKind.json


def summary_line(run_id: str, alerts: Sequence[Mapping[str, Any]]) -> str:
    """Return the one sentence every kind leads with."""
    clusters = ", ".join(str(a["cluster"]) for a in alerts)
    return f"Shoal: {len(alerts)} new risky cluster(s) in run {run_id}: {clusters}"


def _alert_text(alert: Mapping[str, Any]) -> str:
    rules = alert.get("rules") or "-"
    return (
        f"*cluster {alert['cluster']}* ({alert['status']}, {alert['size']} transactions): "
        f"{alert['why']}\nrule: `{rules}`"
    )


def slack_payload(run_id: str, alerts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Build an incoming-webhook message: the summary as ``text``, one section per alert."""
    summary = summary_line(run_id, alerts)
    header = {"type": "section", "text": {"type": "mrkdwn", "text": summary}}
    sections = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _alert_text(a)}} for a in alerts
    ]
    if len(sections) > SLACK_MAX_BLOCKS - 1:  # the rest are in the run's artifact
        sections = sections[: SLACK_MAX_BLOCKS - 2]
        more = f"… and {len(alerts) - len(sections)} more in the run's Prefect artifact"
        sections.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
    for block in (header, *sections):
        if "text" in block:
            block["text"]["text"] = block["text"]["text"][:SLACK_MAX_SECTION_CHARS]
    return {"text": summary, "blocks": [header, *sections]}


def pagerduty_payload(
    run_id: str, alerts: Sequence[Mapping[str, Any]], routing_key: str
) -> dict[str, Any]:
    """Build one Events v2 trigger per run; ``dedup_key`` keeps a retried post to one incident."""
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": f"shoal-{run_id}",
        "payload": {
            "summary": summary_line(run_id, alerts)[:PAGERDUTY_MAX_SUMMARY_CHARS],
            "source": "shoal",
            "severity": "warning",
            "component": "fraud-clustering",
            "custom_details": {"run_id": run_id, "alerts": list(alerts)},
        },
    }


def json_payload(run_id: str, alerts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Build the generic body: the run, the summary sentence and every alert's fields."""
    return {"run_id": run_id, "summary": summary_line(run_id, alerts), "alerts": list(alerts)}


def alert_payload(
    kind: WebhookKind,
    run_id: str,
    alerts: Sequence[Mapping[str, Any]],
    routing_key: str | None = None,
) -> dict[str, Any]:
    """Build the body of ``kind`` for ``alerts``; PagerDuty needs its routing key."""
    if kind is WebhookKind.slack:
        return slack_payload(run_id, alerts)
    if kind is WebhookKind.pagerduty:
        if not routing_key:
            raise ValueError("a PagerDuty alert needs SHOAL_ALERT_ROUTING_KEY")
        return pagerduty_payload(run_id, alerts, routing_key)
    return json_payload(run_id, alerts)


def post_json(url: str, payload: Mapping[str, Any], timeout_s: float = 10.0) -> int:
    """POST ``payload`` as JSON and return the HTTP status (urllib raises on 4xx and 5xx)."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload, default=str).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return int(response.status)
