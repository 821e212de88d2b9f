"""Retrain: the pipeline on the latest rolling window, then the champion comparison.

Scheduled (see ``prefect.yaml``): each run clusters the last ``window_hours`` of data, follows
the champion's clusters into the new window, alerts on new risky clusters and lets the quality
gates decide whether the new encoder becomes the champion.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from prefect import flow, get_run_logger
from pydantic import Field

from flows.fraud_clustering import fraud_clustering
from flows.params import PipelineParams
from infra.credentials import refuse_credentials
from tasks.alerts import alert
from tasks.champion import ChampionParams, find_champion, lineage, promote
from tasks.window import latest_time


@flow(name="retrain")
def retrain(
    events: str,
    transactions: str,
    window_hours: Annotated[float, Field(gt=0)] = 72.0,
    end: datetime | None = None,
    output: str | None = None,
    params: PipelineParams | None = None,
    champion: ChampionParams | None = None,
) -> dict[str, Any]:
    """Cluster ``[end - window_hours, end)``, then compare with the champion and gate it.

    ``end`` defaults to just after the latest transaction, so a schedule over a growing lake
    always takes its newest window.
    """
    refuse_credentials(events=events, transactions=transactions, output=output)
    params = params or PipelineParams()
    champion = champion or ChampionParams()
    end = end or latest_time(transactions)
    start = end - timedelta(hours=window_hours)
    window = params.ingest.model_dump() | {"start": start, "end": end}
    params = params.model_copy(update={"ingest": type(params.ingest).model_validate(window)})
    get_run_logger().info("retraining on [%s, %s)", start.isoformat(), end.isoformat())

    current = find_champion(champion.alias)
    summary = fraud_clustering(events, transactions, output, params)
    table, alerts = lineage(summary["output"], summary["run_id"], current, champion.lineage)
    alerted = alert(summary["run_id"], alerts)
    decision = promote(summary["run_id"], current, champion)
    return {
        **summary,
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "lineage": table.to_dict(orient="records"),
        "alerts": alerts.to_dict(orient="records"),
        "alert_notified": alerted["notified"],
        "decision": decision,
    }
