"""Alerts delivered through Apprise: Slack, PagerDuty Events v2, a generic JSON webhook, and more.

``SHOAL_ALERT_WEBHOOK`` holds an Apprise URL (``slack://…``, ``pagerduty://…``, ``jsons://…``
or any service Apprise knows: https://appriseit.com/services/), or a plain web address that
:func:`apprise_url` translates into one:

- a Slack incoming webhook (``https://hooks.slack.com/services/…``) and any other address
  Apprise recognises itself (Discord, Teams…) stays as it is;
- ``https://events.pagerduty.com/v2/enqueue`` (or ``events.eu.pagerduty.com``) becomes
  ``pagerduty://KEY@KEY/shoal/fraud-clustering?region=…``, ``KEY`` from
  ``SHOAL_ALERT_ROUTING_KEY``. Events v2 needs the routing key alone, but Apprise's URL also
  wants a REST API key, which it only sends as an ``Authorization`` header that Events v2
  ignores; the routing key stands in for it (to the same host that receives it anyway);
- any other ``http(s)://`` address becomes ``json(s)://`` on the same host and path, its query
  kept as query (``-name=value``): Apprise's generic JSON body, ``{"version", "title",
  "message", "attachments", "type"}``.

The bodies are Apprise's own plugins' (``apprise/plugins/slack.py``, ``pagerduty.py``,
``custom_json.py``). The URL is a secret (a Slack webhook's path is its key): Apprise logs URLs,
payloads and keys at INFO and DEBUG, and urllib3 logs the request's path at DEBUG, so during a
delivery those lines are kept from every handler, and Apprise's warnings are returned with the
URL's pieces masked, for the caller to log.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import apprise

from infra.redact import MASK, redact

PAGERDUTY_HOSTS = {"events.pagerduty.com": "us", "events.eu.pagerduty.com": "eu"}
PAGERDUTY_MAX_SUMMARY_CHARS = 1024  # Events v2 rejects a longer payload.summary
MAX_LISTED_ALERTS = 20  # the rest are in the run's Prefect artifact
_MIN_PIECE_CHARS = 4  # shorter pieces of a URL ("v2", "api") would mask ordinary words
_QUIETED = ("apprise", "urllib3.connectionpool")


class AlertConfigError(ValueError):
    """The alert setting cannot be delivered (unknown URL, PagerDuty without a routing key)."""


@dataclass
class Delivery:
    """What became of one notification: delivered or not, and Apprise's warnings, masked."""

    service: str
    delivered: bool
    warnings: list[str] = field(default_factory=list)


def apprise_url(webhook: str, routing_key: str | None = None) -> str:
    """Return the Apprise URL for the ``SHOAL_ALERT_WEBHOOK`` setting (see the module's doc)."""
    parts = urllib.parse.urlsplit(webhook)
    if parts.scheme not in ("http", "https"):
        return webhook
    host = (parts.hostname or "").lower()
    if host in PAGERDUTY_HOSTS:
        if not routing_key:
            raise AlertConfigError("a PagerDuty alert needs SHOAL_ALERT_ROUTING_KEY")
        key = urllib.parse.quote(routing_key, safe="")
        query = urllib.parse.urlencode({"region": PAGERDUTY_HOSTS[host], "image": "no"})
        return f"pagerduty://{key}@{key}/shoal/fraud-clustering?{query}"
    if _quietly(lambda: apprise.Apprise.instantiate(webhook)) is not None:
        return webhook  # Apprise knows this address itself (Slack, Discord, Teams…)
    scheme = "jsons" if parts.scheme == "https" else "json"
    query = urllib.parse.urlencode(
        [(f"-{name}", value) for name, value in urllib.parse.parse_qsl(parts.query)]
    )
    return urllib.parse.urlunsplit((scheme, parts.netloc, parts.path or "/", query, ""))


def summary_line(run_id: str, alerts: Sequence[Mapping[str, Any]]) -> str:
    """Return the sentence every service leads with: how many clusters, which run, which ones."""
    clusters = ", ".join(str(a["cluster"]) for a in alerts)
    return f"Shoal: {len(alerts)} new risky cluster(s) in run {run_id}: {clusters}"


def alert_message(
    service: str, run_id: str, alerts: Sequence[Mapping[str, Any]]
) -> tuple[str, str]:
    """Return ``(title, body)`` for ``service`` (an Apprise protocol, ``pagerduty``, ``slack``…).

    PagerDuty gets the summary line alone (its ``payload.summary``, at most 1024 characters);
    every other service a title and one line per alert, the first ``MAX_LISTED_ALERTS`` of them.
    """
    summary = summary_line(run_id, alerts)
    if service == "pagerduty":
        return "", summary[:PAGERDUTY_MAX_SUMMARY_CHARS]
    lines = [
        f"cluster {a['cluster']} ({a['status']}, {a['size']} transactions): {a['why']}; "
        f"rule: {a.get('rules') or '-'}"
        for a in alerts[:MAX_LISTED_ALERTS]
    ]
    if len(alerts) > MAX_LISTED_ALERTS:
        more = len(alerts) - MAX_LISTED_ALERTS
        lines.append(f"… and {more} more in the run's Prefect artifact (key shoal-alerts)")
    return f"Shoal: {len(alerts)} new risky cluster(s) in run {run_id}", "\n".join(lines)


def service_of(url: str) -> str:
    """Return the Apprise protocol that delivers to ``url`` (``slack``, ``pagerduty``, ``json``…).

    Raises
    ------
    AlertConfigError
        Where Apprise recognises no service in ``url``; the message does not hold the URL.
    """
    plugin = _quietly(lambda: apprise.Apprise.instantiate(url))
    if plugin is None:
        raise AlertConfigError("SHOAL_ALERT_WEBHOOK is not a URL Apprise can deliver to")
    protocol = plugin.secure_protocol or plugin.protocol
    name = protocol[0] if isinstance(protocol, list | tuple) else protocol
    return "json" if name == "jsons" else str(name)


def notify(url: str, title: str, body: str) -> Delivery:
    """Deliver one warning-level notification to ``url`` through Apprise."""
    service = service_of(url)
    with _quiet(_secret_pieces(url)) as warnings:
        sender = apprise.Apprise()
        sender.add(url)
        delivered = bool(
            sender.notify(
                title=title,
                body=body,
                notify_type=apprise.NotifyType.WARNING,
                body_format=apprise.NotifyFormat.TEXT,
            )
        )
    return Delivery(service, delivered, warnings)


def _secret_pieces(url: str) -> list[str]:
    """Return the pieces of ``url`` that may be secret: user, password, host, path, query values."""
    parts = urllib.parse.urlsplit(url)
    # From the netloc as written: ``hostname`` lowercases, and Apprise's host may be a key.
    userinfo, _, hostport = parts.netloc.rpartition("@")
    pieces = [*userinfo.split(":", 1), hostport.rsplit(":", 1)[0], *parts.path.split("/")]
    pieces += [value for _, value in urllib.parse.parse_qsl(parts.query)]
    found = {p for p in pieces if p and len(p) >= _MIN_PIECE_CHARS}
    found |= {urllib.parse.unquote(p) for p in found}
    return sorted(found, key=len, reverse=True)  # a longer piece may contain a shorter one


class _Collect(logging.Handler):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.secrets, self.lines = secrets, []

    def emit(self, record: logging.LogRecord) -> None:
        line = redact(record.getMessage())
        for secret in self.secrets:
            line = line.replace(secret, MASK)
        self.lines.append(line)


def _warnings_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING


@contextmanager
def _quiet(secrets: list[str]) -> Iterator[list[str]]:
    """Keep Apprise's and urllib3's INFO and DEBUG lines (URLs, keys, bodies) from every handler.

    Apprise's warnings do not propagate either: they are collected, masked, for the caller.
    """
    loggers = [logging.getLogger(name) for name in _QUIETED]
    collect = _Collect(secrets)
    apprise_logger = loggers[0]
    saved = apprise_logger.propagate
    apprise_logger.propagate = False
    apprise_logger.addHandler(collect)
    for logger in loggers:
        logger.addFilter(_warnings_only)
    try:
        yield collect.lines
    finally:
        for logger in loggers:
            logger.removeFilter(_warnings_only)
        apprise_logger.removeHandler(collect)
        apprise_logger.propagate = saved


def _quietly(call: Any) -> Any:
    """Run ``call`` with Apprise's logging quieted (its URL parsing logs what it cannot parse)."""
    with _quiet([]):
        return call()
