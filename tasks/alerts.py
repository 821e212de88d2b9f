"""Alerts: a new risky cluster is news for the investigators, wherever they look.

It becomes a Prefect artifact (the UI's run page), a warning in the flow run's log, and, when
``SHOAL_ALERT_WEBHOOK`` is set, a notification through Apprise: a Slack incoming webhook,
PagerDuty Events v2, a generic JSON webhook or any service Apprise knows
(``infra.notifications``). The webhook's URL is a secret: it is never logged.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from infra.notifications import AlertConfigError, alert_message, apprise_url, notify, service_of
from infra.settings import get_settings

ALERT_COLUMNS = ["cluster", "status", "previous", "size", "previous_size", "why", "rules"]


def alerts_markdown(run_id: str, alerts: pd.DataFrame) -> str:
    """Render ``alerts`` as the markdown table of the run's Prefect artifact."""
    lines = [
        f"# {len(alerts)} new risky cluster(s) in run `{run_id}`",
        "",
        "| cluster | lineage | size | why risky | rule |",
        "|---|---|---|---|---|",
    ]
    for a in alerts.itertuples():
        lineage = a.status if a.previous < 0 else f"{a.status} from {a.previous} (was not risky)"
        lines.append(f"| {a.cluster} | {lineage} | {a.size} | {a.why} | {a.rules or '-'} |")
    return "\n".join(lines)


@task(name="alert")
def alert(run_id: str, alerts: pd.DataFrame) -> dict[str, Any]:
    """Raise one alert per row of ``alerts`` (columns ``ALERT_COLUMNS``); returns what was done.

    A notification that fails, or a setting Apprise cannot use, is logged, not raised: the
    run's results and the champion decision must not be lost to a chat server's outage.
    """
    logger = get_run_logger()
    outcome: dict[str, Any] = {"n_alerts": len(alerts), "notified": None}
    if alerts.empty:
        return outcome
    for a in alerts.itertuples():
        msg = "ALERT new risky cluster %s (%s, %d transactions): %s"
        logger.warning(msg, a.cluster, a.status, a.size, a.why)
    create_markdown_artifact(
        alerts_markdown(run_id, alerts),
        key="shoal-alerts",
        description=f"Shoal: new risky clusters in run {run_id}",
    )
    settings = get_settings()
    if not settings.alert_webhook:
        return outcome
    try:
        url = apprise_url(settings.alert_webhook, settings.alert_routing_key)
        service = service_of(url)
    except AlertConfigError as err:  # its message names the setting, never the URL
        logger.warning("alert notification not sent: %s", err)
        outcome["notified"] = False
        return outcome
    records = json.loads(alerts[ALERT_COLUMNS].to_json(orient="records"))
    title, body = alert_message(service, run_id, records)
    delivery = notify(url, title, body)
    for line in delivery.warnings:  # Apprise's own reasons, the URL's pieces masked
        logger.warning("alert notification (%s): %s", service, line)
    if not delivery.delivered:
        logger.warning("alert notification (%s) failed", service)
    outcome["notified"] = delivery.delivered
    return outcome
