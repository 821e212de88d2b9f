"""The score flow: new transactions through the champion, hits on risky clusters out.

Wiring only: resolve the champion once, ingest the new window the way the champion's was
ingested, then assign and flag (``tasks.score``).
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.run_output import requested_output
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
    requested = requested_output("score", events, transactions, output)
    with requested.claim() as run:
        staged = fetch_champion(model_alias, run.root, run.run_id)
        ingested = ingest(events, transactions, run.root, staged.ingest, run.run_id)
        metrics = score_transactions(run.root, staged, run.run_id)
        return run.publish(
            {
                "run_id": run.run_id,
                "output": run.location.uri,
                # the champion's state was copied into the staging directory: name it as published
                "champion": {
                    **staged.champion.model_dump(mode="json"),
                    "root": run.location.published_path(staged.root),
                    "ingest": staged.ingest.model_dump(mode="json"),
                },
                "ingest": ingested.counts,
                "metrics": metrics,
            }
        )
