"""The main flow: raw events and transactions in, explained fraud clusters out.

Wiring only: each stage is a task that reads and writes the run's catalog and logs to the
run's single MLflow run; what passes between tasks is small (paths, digests, histories).
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.params import PipelineParams
from flows.run_output import requested_output
from infra.locks import command_key
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
    params = params or PipelineParams()
    requested = requested_output("fraud_clustering", events, transactions, output)
    key = command_key(events, transactions, params.model_dump(mode="json"))
    with requested.claim(command=key) as run:
        root, run_id = run.root, run.run_id
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
            root, run_id, losses, params.model_dump(mode="json"), published_as=run.location.uri
        )
        run.publish()
        return summary
