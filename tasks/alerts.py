"""Alerts: a new risky cluster is news for the investigators, wherever they look.

It becomes a Prefect artifact (the UI's run page), a warning in the flow run's log, and, when
``SHOAL_ALERT_WEBHOOK`` is set, a POST in the body its service documents: a Slack incoming
webhook, PagerDuty Events v2 or generic JSON (``infra.webhooks``). The webhook's URL is a
secret: it is never logged.
"""

from __future__ import annotations

import json
import urllib.error
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from infra.redact import redact
from infra.settings import get_settings
from infra.webhooks import alert_payload, post_json, webhook_kind

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

    A webhook that fails is logged, not raised: the run's results and the champion decision
    must not be lost to a chat server's outage.
    """
    logger = get_run_logger()
    outcome: dict[str, Any] = {"n_alerts": len(alerts), "webhook_status": None}
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
    if settings.alert_webhook:
        kind = webhook_kind(settings.alert_webhook, settings.alert_format)
        records = json.loads(alerts[ALERT_COLUMNS].to_json(orient="records"))
        payload = alert_payload(kind, run_id, records, settings.alert_routing_key)
        try:
            outcome["webhook_status"] = post_json(settings.alert_webhook, payload)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            # The reason only: the URL is the webhook's secret.
            reason = getattr(err, "reason", None) or err
            logger.warning("alert webhook (%s) failed: %s", kind, redact(str(reason)))
            outcome["webhook_status"] = getattr(err, "code", -1)
    return outcome
