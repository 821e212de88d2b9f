"""Ingestion alone, for data engineers: validate, quarantine and sessionize one window of data.

Wiring only. Without ``output`` the outputs go to ``.shoal/ingest/<events>-<transactions>``
(input digests), so rerunning on unchanged files lands on the same location and the ingest
task's cache can reuse what is already there. A given ``output`` must lie under the output
root. One run at a time per location (``infra.locks``). Ingest writes into the location itself,
file by file (each atomic), ``lineage.json`` last: the cache needs the outputs where they are.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from infra.credentials import refuse_credentials
from infra.locks import claim_output
from infra.settings import get_settings
from infra.storage import OutputLocation, resolve_output
from infra.tracking import RunLogger
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
    refuse_credentials(events=events, transactions=transactions, output=output)
    params = params or IngestParams()
    if output is None:
        digests = f"{cached_source_digest(events)}-{cached_source_digest(transactions)}"
        location = OutputLocation(str(get_settings().root / "ingest" / digests))
    else:
        location = resolve_output(output)
    tags = {"prefect.flow_run_id": str(flow_run.get_id() or ""), "shoal.flow": "ingest"}
    name = str(flow_run.get_name() or "ingest")
    with claim_output(location, name, tags, published=False) as (run_id, _):
        root = location.uri
        RunLogger(run_id).params({"events": events, "transactions": transactions, "output": root})
        get_run_logger().info("ingest run %s writes to %s", run_id, root)
        result = ingest(events, transactions, root, params, run_id)
        return {"output": root, "run_id": run_id, **result.model_dump(mode="json")}
