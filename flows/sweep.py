"""The sweep flow: one ingest, then Ray Tune trials of the pipeline, ranked; the best as YAML.

Wiring only: the MLflow parent run and the shared ingest here, the trials in ``tasks.sweep``.
The best configuration is written where ``shoal run --config`` can take it.
"""

from __future__ import annotations

import posixpath
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from catalog.datasets import Catalog
from flows.params import PipelineParams
from infra.credentials import refuse_credentials
from infra.locks import claim_output
from infra.storage import resolve_output
from infra.tracking import RunLogger
from tasks.ingest import ingest
from tasks.sweep import SweepSpec, tune_trials


@flow(name="sweep")
def sweep(
    events: str,
    transactions: str,
    space: str,
    output: str | None = None,
    base_config: str | None = None,
) -> dict[str, Any]:
    """Tune the stages' parameters over ``space`` (a sweep YAML, see ``configs/sweep.yaml``).

    ``base_config`` (a ``--config`` YAML) sets everything the space does not; ``output``
    defaults to ``<output root>/<parent run id>``, confined, locked and published at once like
    the main flow's.
    """
    refuse_credentials(events=events, transactions=transactions, output=output)
    base = PipelineParams.from_yaml(base_config) if base_config else PipelineParams()
    spec = SweepSpec.from_yaml(space, base.model_dump(mode="json"))
    location = resolve_output(output) if output is not None else None
    tags = {"prefect.flow_run_id": str(flow_run.get_id() or ""), "shoal.flow": "sweep"}
    with claim_output(location, str(flow_run.get_name() or "sweep"), tags) as (run_id, location):
        root = location.staging
        RunLogger(run_id).params(
            {"events": events, "transactions": transactions, "output": location.uri, "space": space}
        )
        get_run_logger().info("sweep run %s writes to %s (staged)", run_id, location.uri)
        ingest_root = posixpath.join(root.rstrip("/"), "ingest")
        ingested = ingest(events, transactions, ingest_root, base.ingest, run_id)
        result = tune_trials(
            root, ingest_root, ingested, base.model_dump(mode="json"), spec, run_id
        )
        summary = {
            "run_id": run_id,
            "output": location.uri,
            **result.model_dump(),
            "best_config": location.published_path(result.best_config),
            "results": location.published_path(result.results),
        }
        Catalog(root).save_json("summary", summary)  # the completion marker, written last
        location.publish(run_id)
        return summary
