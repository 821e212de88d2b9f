"""The score flow: new transactions through the champion, hits on risky clusters out.

Wiring only: resolve the champion once, ingest the new window the way the champion's was
ingested, then assign and flag (``tasks.score``).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from infra.credentials import refuse_credentials
from infra.settings import get_settings
from infra.tracking import RunLogger, tracked_run
from tasks.ingest import ingest
from tasks.score import fetch_champion, score_transactions


@flow(name="score")
def score(
    events: str,
    transactions: str,
    output: str | None = None,
    model_alias: str = "champion",
) -> dict[str, Any]:
    """Assign new transactions to the clusters of ``shoal-encoder@<model_alias>``.

    Writes ``scores.parquet`` (every transaction) and ``hits.parquet`` (those in risky
    clusters, with the cluster's rule text) to ``output``, default ``.shoal/runs/<run id>``.
    """
    refuse_credentials(events=events, transactions=transactions, output=output)
    tags = {"prefect.flow_run_id": str(flow_run.get_id() or ""), "shoal.flow": "score"}
    with tracked_run(str(flow_run.get_name() or "score"), tags) as run_id:
        root = output or str(get_settings().runs_dir / run_id)
        RunLogger(run_id).params({"events": events, "transactions": transactions, "output": root})
        get_run_logger().info("score run %s writes to %s", run_id, root)
        champion = fetch_champion(model_alias, root, run_id)
        ingested = ingest(events, transactions, root, champion.ingest, run_id)
        metrics = score_transactions(root, champion, run_id)
        return {
            "run_id": run_id,
            "output": root,
            "champion": champion.model_dump(mode="json"),
            "ingest": ingested.counts,
            "metrics": metrics,
        }
