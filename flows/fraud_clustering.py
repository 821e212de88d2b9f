"""The main flow: raw events and transactions in, explained fraud clusters out.

Wiring only: each stage is a task that reads and writes the run's catalog and logs to the
run's single MLflow run; what passes between tasks is small (paths, digests, histories).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.params import PipelineParams
from infra.credentials import refuse_credentials
from infra.locks import claim_output, command_key
from infra.storage import resolve_output
from infra.tracking import RunLogger
from tasks.cluster import cluster
from tasks.embed import embed_sequences
from tasks.explain import explain
from tasks.features import build_features
from tasks.ingest import ingest
from tasks.pretrain import pretrain
from tasks.report import report
from tasks.risk import cluster_risk


@flow(name="fraud_clustering")
def fraud_clustering(
    events: str,
    transactions: str,
    output: str | None = None,
    params: PipelineParams | None = None,
) -> dict[str, Any]:
    """Cluster one window of transactions by behaviour and explain the risky clusters.

    ``output`` must lie under the output root (``infra.storage``); it defaults to
    ``<output root>/<MLflow run id>``. Stages work in the location's staging directory and the
    outputs appear at ``output`` in one step at the end. Rerunning a killed command resumes it:
    ingest and a finished pretraining are cache hits, an unfinished one resumes from its last
    checkpoint (``docs/hardening.md``). Without ``output`` "the same command" means the same
    inputs and parameters: the rerun takes back the location of the newest such run that died
    or failed before publishing, unless a live run holds it (``infra.locks.claim_output``).
    URIs carry no credentials: they come from the environment (``infra.credentials``).
    """
    refuse_credentials(events=events, transactions=transactions, output=output)
    params = params or PipelineParams()
    location = resolve_output(output) if output is not None else None
    key = command_key(events, transactions, params.model_dump(mode="json"))
    tags = {"prefect.flow_run_id": str(flow_run.get_id() or ""), "shoal.flow": "fraud_clustering"}
    name = str(flow_run.get_name() or "fraud_clustering")
    with claim_output(location, name, tags, command=key) as (run_id, location):
        root = location.staging
        RunLogger(run_id).params(
            {"events": events, "transactions": transactions, "output": location.uri}
        )
        get_run_logger().info("run %s writes to %s (staged in %s)", run_id, location.uri, root)

        ingested = ingest(events, transactions, root, params.ingest, run_id)
        max_len = params.ingest.max_sequence_length
        pretrained = pretrain(root, ingested.vocabulary_size, max_len, params.pretrain, run_id)
        embed_sequences(root, pretrained, params.embed, run_id)
        build_features(root, params.features, run_id)
        cluster(root, params.cluster, run_id)
        cluster_risk(root, params.risk, run_id)
        explain(root, params.explain, run_id)
        losses = [h["val_loss"] for h in pretrained.history]
        summary = report(
            root, run_id, losses, params.model_dump(mode="json"), published_as=location.uri
        )
        location.publish(run_id)
        return summary
