"""Alerts: a new risky cluster is news for the investigators, wherever they look.

It becomes a Prefect artifact (the UI's run page), a warning in the flow run's log, and, when
``SHOAL_ALERT_WEBHOOK`` is set, a JSON POST (Slack, PagerDuty or a ticketing bridge).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from infra.settings import get_settings

ALERT_COLUMNS = ["cluster", "status", "previous", "size", "previous_size", "why", "rules"]


def post_json(url: str, payload: dict[str, Any], timeout_s: float = 10.0) -> int:
    """POST ``payload`` as JSON and return the HTTP status."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload, default=str).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return int(response.status)


def alerts_markdown(run_id: str, alerts: pd.DataFrame) -> str:
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
    url = get_settings().alert_webhook
    if url:
        payload = {"run_id": run_id, "alerts": alerts[ALERT_COLUMNS].to_dict(orient="records")}
        try:
            outcome["webhook_status"] = post_json(url, payload)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            logger.error("alert webhook %s failed: %s", url, err)
            outcome["webhook_status"] = getattr(err, "code", -1)
    return outcome
