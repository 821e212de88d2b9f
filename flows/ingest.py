"""Ingestion alone, for data engineers: validate, quarantine and sessionize one window of data.

Wiring only. Without ``output`` the outputs go to ``.shoal/ingest/<events>-<transactions>``
(input digests), so rerunning on unchanged files lands on the same location and the ingest
task's cache can reuse what is already there. A given ``output`` must lie under the output
root. One run at a time per location (``infra.locks``). Ingest writes into the location itself,
file by file (each atomic), ``lineage.json`` last: the cache needs the outputs where they are.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.run_output import requested_output
from infra.settings import get_settings
from infra.storage import OutputLocation
from tasks.ingest import IngestParams, ingest
from tasks.ingest_provenance import cached_source_digest


@flow(name="ingest")
def ingest_flow(
    events: str,
    transactions: str,
    output: str | None = None,
    params: IngestParams | None = None,
) -> dict[str, Any]:
    """Read, check and sessionize both sources; return counts, digests and where they went."""
    params = params or IngestParams()
    requested = requested_output(
        "ingest",
        events,
        transactions,
        output,
        default=lambda: _digest_location(events, transactions),
    )
    with requested.claim(published=False) as run:
        result = ingest(events, transactions, run.root, params, run.run_id)
        return {"output": run.root, "run_id": run.run_id, **result.model_dump(mode="json")}


def _digest_location(events: str, transactions: str) -> OutputLocation:
    """``<home>/ingest/<events digest>-<transactions digest>``: unchanged inputs, same place."""
    digests = f"{cached_source_digest(events)}-{cached_source_digest(transactions)}"
    return OutputLocation(str(get_settings().root / "ingest" / digests))
