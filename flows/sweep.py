"""The sweep flow: one ingest, then Ray Tune trials of the pipeline, ranked; the best as YAML.

Wiring only: the MLflow parent run and the shared ingest here, the trials in ``tasks.sweep``.
The best configuration is written where ``shoal run --config`` can take it.
"""

from __future__ import annotations

import posixpath
from typing import Any

from prefect import flow

from flows.params import PipelineParams
from flows.run_output import requested_output
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
    requested = requested_output("sweep", events, transactions, output)
    base = PipelineParams.from_yaml(base_config) if base_config else PipelineParams()
    spec = SweepSpec.from_yaml(space, base.model_dump(mode="json"))
    with requested.claim(params={"space": space}) as run:
        ingest_root = posixpath.join(run.root.rstrip("/"), "ingest")
        ingested = ingest(events, transactions, ingest_root, base.ingest, run.run_id)
        result = tune_trials(
            run.root, ingest_root, ingested, base.model_dump(mode="json"), spec, run.run_id
        )
        return run.publish(
            {
                "run_id": run.run_id,
                "output": run.location.uri,
                **result.model_dump(),
                "best_config": run.location.published_path(result.best_config),
                "results": run.location.published_path(result.results),
            }
        )
