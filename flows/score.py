"""The score flow: new transactions through the champion, hits on risky clusters out.

Wiring only: resolve the champion once, ingest the new window the way the champion's was
ingested, then assign and flag (``tasks.score``).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from catalog.datasets import Catalog
from infra.credentials import refuse_credentials
from infra.locks import claim_output
from infra.storage import resolve_output
from infra.tracking import RunLogger
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
    clusters, with the cluster's rule text) to ``output``, default
    ``<output root>/<run id>``: confined, locked and published at once like the main flow's.
    """
    refuse_credentials(events=events, transactions=transactions, output=output)
    location = resolve_output(output) if output is not None else None
    tags = {"prefect.flow_run_id": str(flow_run.get_id() or ""), "shoal.flow": "score"}
    with claim_output(location, str(flow_run.get_name() or "score"), tags) as (run_id, location):
        root = location.staging
        RunLogger(run_id).params(
            {"events": events, "transactions": transactions, "output": location.uri}
        )
        get_run_logger().info("score run %s writes to %s (staged)", run_id, location.uri)
        champion = fetch_champion(model_alias, root, run_id)
        ingested = ingest(events, transactions, root, champion.ingest, run_id)
        metrics = score_transactions(root, champion, run_id)
        summary = {
            "run_id": run_id,
            "output": location.uri,
            # the champion's state was copied into the staging directory: name it as published
            "champion": {
                **champion.model_dump(mode="json"),
                "root": location.published_path(champion.root),
            },
            "ingest": ingested.counts,
            "metrics": metrics,
        }
        Catalog(root).save_json("summary", summary)  # the completion marker, written last
        location.publish(run_id)
        return summary
