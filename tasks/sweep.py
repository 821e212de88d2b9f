"""Sweep: Ray Tune over stage parameters, each trial the pipeline's own stage functions.

A trial is a Tune function trainable that runs pretrain → embed → features → cluster →
evaluate (the tasks' ``.fn``) on the sweep's single ingest, in its own output folder, logging
to its own MLflow child run (``mlflow.parentRunId``; ``shoal.sweep.node`` names the Ray node
the trial ran on, ``shoal.pretrain.node.0`` its training worker's), and reports
``ops.evaluation.trial_score``.

Resources follow Ray's Train-in-Tune guide: the trial is mostly the driver of its Ray Train
run, so it asks Tune for no CPU and its one training worker takes one. Two concurrent trials then
fill two cores; with Tune's default of 1 CPU per trial, two drivers would hold both CPUs and
each Train run would wait forever for its worker.
"""

from __future__ import annotations

import copy
import math
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import ray
import yaml
from prefect import get_run_logger, task
from prefect.client.orchestration import get_client
from prefect.logging import disable_run_logger
from prefect.settings import PREFECT_API_URL, temporary_settings
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from ray import tune
from ray.tune.search.basic_variant import BasicVariantGenerator

from catalog.datasets import Catalog
from infra.durable import ray_storage
from infra.ray import ensure_ray
from infra.settings import get_settings
from infra.tracking import RunLogger, tracked_run
from ops.evaluation import Basis, trial_score
from tasks.cluster import ClusterParams, cluster
from tasks.embed import EmbedParams, embed_sequences
from tasks.features import FeatureParams, build_features
from tasks.ingest import IngestResult
from tasks.io import log_dataset
from tasks.pretrain import PretrainParams, pretrain
from tasks.risk import RiskParams, cluster_risk

# YAML arguments are positional; ``choice`` takes its values as one list.
DISTRIBUTIONS = {
    "choice": lambda *values: tune.choice(list(values)),
    "uniform": tune.uniform,
    "loguniform": tune.loguniform,
    "randint": tune.randint,
    "quniform": tune.quniform,
}
# Tune wants a non-empty request; a trial driver holds no CPU (see above), only its memory.
DRIVER_MEMORY = 256 * 1024**2
SHARED_INPUTS = ("transactions", "sequences", "vocabulary")  # ingest's outputs every trial reads
TABLE_METRICS = [
    "quality.dbcv",
    "quality.noise_share",
    "quality.n_clusters",
    "quality.silhouette",
    "risk.n_risky_clusters",
    "labels.fraud_caught",
    "labels.risky_precision",
]


class SweepSpec(BaseModel):
    """A search space over dotted ``PipelineParams`` paths, and how to run and rank it."""

    model_config = ConfigDict(extra="forbid")

    space: dict[str, dict[str, list[Any]]] = Field(
        description="path -> {distribution: arguments}, e.g. {loguniform: [0.05, 0.5]}"
    )
    num_samples: int = Field(8, ge=1, description="trials")
    max_concurrent: int = Field(2, ge=1, description="trials running at once")
    metric: Basis = Field("auto", description="ranking: labels when present, else DBCV - noise")
    workers_per_trial: int = Field(1, ge=1, description="Ray Train workers of each trial")
    seed: int | None = Field(0, description="seed of the random search")

    @field_validator("space")
    @classmethod
    def _known_paths_and_distributions(
        cls, space: dict[str, dict[str, list[Any]]], info: ValidationInfo
    ) -> dict[str, dict[str, list[Any]]]:
        parameters = (info.context or {}).get("parameters")
        for path, entry in space.items():
            if parameters is not None and not has_path(parameters, path):
                raise ValueError(f"'{path}' is not a pipeline parameter")
            if len(entry) != 1 or next(iter(entry)) not in DISTRIBUTIONS:
                raise ValueError(f"'{path}' needs one of {sorted(DISTRIBUTIONS)}, got {entry}")
        return space

    @classmethod
    def from_yaml(cls, path: str | Path, parameters: dict[str, Any]) -> SweepSpec:
        """Read and check a space; ``parameters`` (the base configuration) says what exists."""
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
            return cls.model_validate(data, context={"parameters": parameters})
        except (ValidationError, yaml.YAMLError) as err:
            raise ValueError(f"{path}: {err}") from err

    def param_space(self) -> dict[str, Any]:
        """Return the space as Ray Tune search distributions, keyed by dotted parameter path."""
        return {
            path: DISTRIBUTIONS[kind](*args)
            for path, entry in self.space.items()
            for kind, args in entry.items()
        }


def has_path(data: dict[str, Any], path: str) -> bool:
    """Whether the dotted ``path`` names an entry of nested ``data``."""
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def with_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Copy nested ``data``, replacing the values at dotted paths."""
    out = copy.deepcopy(data)
    for path, value in overrides.items():
        *parents, leaf = path.split(".")
        node = out
        for part in parents:
            node = node[part]
        node[leaf] = value
    return out


@dataclass(frozen=True)
class TrialContext:
    """What every trial shares: the base configuration, the ingest, the parent run."""

    base: dict[str, Any]
    ingest_root: str
    sweep_root: str
    vocabulary_size: int
    max_len: int
    parent_run_id: str
    metric: Basis
    workers: int
    environment: dict[str, str]
    prefect_api: str


def run_trial(config: dict[str, Any], context: TrialContext) -> None:
    """Tune trainable: one configuration through the pipeline's stages, one child run."""
    # Settings are read from the environment; Ray's worker may have started before they were set.
    os.environ.update(context.environment)
    get_settings.cache_clear()
    stages = with_overrides(context.base, {**config, "pretrain.num_workers": context.workers})
    trial_id = tune.get_context().get_trial_id()
    root = posixpath.join(context.sweep_root, "trials", trial_id)
    shared, own = Catalog(context.ingest_root), Catalog(root)
    for name in SHARED_INPUTS:
        own.save_bytes(name, shared.load_bytes(name))
    tags = {
        "mlflow.parentRunId": context.parent_run_id,
        "shoal.flow": "sweep-trial",
        "shoal.sweep.node": ray.get_runtime_context().get_node_id(),  # where this driver runs
    }
    # Stages may run Prefect sub-tasks (pretrain's cached fit): they report to the sweep's API.
    # No Prefect run surrounds this Ray worker, so the stages' run loggers are silenced.
    with (
        temporary_settings({PREFECT_API_URL: context.prefect_api}),
        disable_run_logger(),
        tracked_run(f"trial-{trial_id}", tags) as run_id,
    ):
        tracker = RunLogger(run_id)
        tracker.params(config, prefix="sweep.")
        pretrained = pretrain.fn(
            root,
            context.vocabulary_size,
            context.max_len,
            PretrainParams.model_validate(stages["pretrain"]),
            run_id,
        )
        embed_sequences.fn(root, pretrained, EmbedParams.model_validate(stages["embed"]), run_id)
        build_features.fn(root, FeatureParams.model_validate(stages["features"]), run_id)
        cluster.fn(root, ClusterParams.model_validate(stages["cluster"]), run_id)
        metrics = cluster_risk.fn(root, RiskParams.model_validate(stages["risk"]), run_id)
        score = trial_score(metrics, context.metric)
        tracker.metrics({"sweep.score": score})
    tune.report({"score": score, "run_id": run_id, **metrics})


class SweepResult(BaseModel):
    """What a sweep hands back: the best trial, its configuration and the ranked table."""

    best_run_id: str
    best_score: float
    best_config: str
    results: str
    n_trials: int
    n_failed: int


def results_table(grid: tune.ResultGrid, spec: SweepSpec) -> pd.DataFrame:
    """One row per trial, best first: its sampled values, score, child run and quality."""
    rows = []
    for result in grid:
        metrics = result.metrics or {}
        row: dict[str, Any] = {
            "trial_id": metrics.get("trial_id", ""),
            "run_id": metrics.get("run_id", ""),
            "status": "error" if result.error else "finished",
            "score": float(metrics.get("score", -math.inf)),
        }
        row.update({path: result.config.get(path) for path in spec.space})
        row.update({name: metrics.get(name, math.nan) for name in TABLE_METRICS})
        rows.append(row)
    table = pd.DataFrame(rows).sort_values("score", ascending=False, kind="stable")
    return table.assign(rank=range(1, len(table) + 1)).reset_index(drop=True)


@task(name="tune")
def tune_trials(
    sweep_root: str,
    ingest_root: str,
    ingested: IngestResult,
    base: dict[str, Any],
    spec: SweepSpec,
    run_id: str,
) -> SweepResult:
    """Run the trials; write the ranked table and the best configuration (``base`` + its values).

    ``base`` is a whole pipeline configuration as plain data; the caller validates it.
    """
    ensure_ray()
    settings = get_settings()
    environment = {
        "SHOAL_HOME": str(settings.root),
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
        "SHOAL_EXPERIMENT": settings.mlflow_experiment,
        # Trial encoders are candidates, not releases: they stay out of the served model's list.
        "SHOAL_MODEL_NAME": f"{settings.registered_model}-sweep",
    }
    if settings.storage_uri:  # trials on other nodes keep their training runs there too
        environment["SHOAL_STORAGE_URI"] = settings.storage_uri
    context = TrialContext(
        base=base,
        ingest_root=ingest_root,
        sweep_root=sweep_root,
        vocabulary_size=ingested.vocabulary_size,
        max_len=base["ingest"]["max_sequence_length"],
        parent_run_id=run_id,
        metric=spec.metric,
        workers=spec.workers_per_trial,
        environment=environment,
        prefect_api=str(get_client(sync_client=True).api_url).rstrip("/"),  # ephemeral too
    )
    storage_path, filesystem = ray_storage(settings)
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, context=context), {"cpu": 0, "memory": DRIVER_MEMORY}
    )
    tuner = tune.Tuner(
        trainable,
        param_space=spec.param_space(),
        tune_config=tune.TuneConfig(
            num_samples=spec.num_samples,
            reuse_actors=True,  # a trial driver imports torch, Ray Train and MLflow only once
            # A seeded random search; Tune ignores TuneConfig.max_concurrent_trials for a
            # SearchGenerator like this one, so the bound is the generator's own.
            search_alg=BasicVariantGenerator(
                random_state=spec.seed, max_concurrent=spec.max_concurrent
            ),
        ),
        run_config=tune.RunConfig(
            name=f"sweep-{run_id}",
            storage_path=storage_path,
            storage_filesystem=filesystem,
            verbose=0,
        ),
    )
    grid = tuner.fit()
    table = results_table(grid, spec)
    finished = table.loc[table["status"] == "finished"]
    if finished.empty:
        raise RuntimeError(f"all {len(table)} sweep trials failed: {grid.errors[:1]}")
    best = finished.iloc[0]
    best_config = with_overrides(base, {path: _plain(best[path]) for path in spec.space})

    catalog = Catalog(sweep_root)
    catalog.save_table("sweep_results", table)
    header = (
        f"# best of sweep {run_id}: trial run {best['run_id']}, "
        f"score {best['score']:.4f} ({spec.metric}); use with `shoal run --config`\n"
    )
    catalog.save_text("best_config", header + yaml.safe_dump(best_config, sort_keys=False))
    tracker = RunLogger(run_id)
    tracker.params(spec.model_dump(exclude={"space"}), prefix="sweep.")
    tracker.params({"sweep.space": spec.space})
    tracker.metrics(
        {
            "sweep.best_score": float(best["score"]),
            "sweep.n_trials": float(len(table)),
            "sweep.n_failed": float((table["status"] != "finished").sum()),
        }
    )
    tracker.tags({"shoal.sweep.best_run_id": str(best["run_id"])})
    for name in ("sweep_results", "best_config"):
        log_dataset(tracker, catalog, name, "sweep")
    tracker.text(table.to_string(index=False), "sweep/results.txt")
    get_run_logger().info(
        "sweep: %d trials (%d failed); best score %.4f in child run %s",
        len(table),
        int((table["status"] != "finished").sum()),
        best["score"],
        best["run_id"],
    )
    return SweepResult(
        best_run_id=str(best["run_id"]),
        best_score=float(best["score"]),
        best_config=catalog.uri("best_config"),
        results=catalog.uri("sweep_results"),
        n_trials=len(table),
        n_failed=int((table["status"] != "finished").sum()),
    )


def _plain(value: Any) -> Any:
    """Turn a numpy scalar of the results table into the YAML-safe value it stands for."""
    return value.item() if hasattr(value, "item") else value
