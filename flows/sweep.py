"""The sweep flow: one ingest, then Ray Tune trials of the pipeline, ranked; the best as YAML.

Wiring only: the MLflow parent run and the shared ingest here, the trials in ``tasks.sweep``.
The best configuration is written where ``shoal run --config`` can take it.
"""

from __future__ import annotations

import posixpath
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.params import PipelineParams
from infra.credentials import refuse_credentials
from infra.settings import get_settings
from infra.tracking import RunLogger, tracked_run
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
    defaults to ``.shoal/runs/<parent run id>``.
    """
    refuse_credentials(events=events, transactions=transactions, output=output)
    base = PipelineParams.from_yaml(base_config) if base_config else PipelineParams()
    spec = SweepSpec.from_yaml(space, base.model_dump(mode="json"))
    tags = {"prefect.flow_run_id": str(flow_run.get_id() or ""), "shoal.flow": "sweep"}
    with tracked_run(str(flow_run.get_name() or "sweep"), tags) as run_id:
        root = output or str(get_settings().runs_dir / run_id)
        RunLogger(run_id).params(
            {"events": events, "transactions": transactions, "output": root, "space": space}
        )
        get_run_logger().info("sweep run %s writes to %s", run_id, root)
        ingest_root = posixpath.join(root.rstrip("/"), "ingest")
        ingested = ingest(events, transactions, ingest_root, base.ingest, run_id)
        result = tune_trials(
            root, ingest_root, ingested, base.model_dump(mode="json"), spec, run_id
        )
        return {"run_id": run_id, "output": root, **result.model_dump()}
