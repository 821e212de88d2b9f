"""Champion: compare a retrained run with the serving one, then decide whether it takes over.

The champion is whatever the registered encoder's ``champion`` alias points at: its model
version names the MLflow run that trained it, and that run's ``output`` parameter names where
its clusters were written. Lineage needs those clusters; the quality gates need only metrics.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient
from prefect import get_run_logger, task
from pydantic import BaseModel, Field

from catalog.datasets import Catalog
from infra.settings import get_settings
from infra.tracking import RunLogger, aliased_version
from ops.features import FeatureSpec, hybrid_vectors, transform_features
from ops.risk import STATUSES, ClusterSet, LineageConfig, cluster_lineage
from tasks.alerts import ALERT_COLUMNS

# Session pace and length: what a ring's script looks like whichever encoder was trained.
BEHAVIOUR_COLUMNS = ["median_dwell", "dwell_cv", "duration", "n_events"]


class LineageParams(BaseModel):
    """How clusters are followed from the champion's window to the new one."""

    min_member_jaccard: float = Field(0.3, gt=0, le=1)
    min_entity_jaccard: float = Field(0.3, gt=0, le=1)
    max_centroid_distance: float = Field(
        0.35, gt=0, description="in units of the champion's typical cluster separation"
    )
    growth: float = Field(1.5, gt=1, description="size ratio that counts as grown or shrunk")
    entity_columns: list[str] | None = Field(
        None, description="account/device columns; default: user_id and the id-like features"
    )


class QualityGates(BaseModel):
    """Every gate must pass for the champion alias to move to the new run's encoder."""

    max_noise_share: float = Field(0.6, ge=0, le=1, description="share of txns left as noise")
    min_clusters: int = Field(1, ge=0)
    quality_metric: Literal["dbcv", "silhouette"] = "dbcv"
    max_quality_drop: float = Field(
        0.1, ge=0, description="how much worse than the champion the quality metric may be"
    )


class ChampionParams(BaseModel):
    """Which alias the gates move, how clusters are followed and the gates themselves."""

    alias: str = Field("champion", min_length=1)
    lineage: LineageParams = Field(default_factory=LineageParams)
    gates: QualityGates = Field(default_factory=QualityGates)


class Champion(BaseModel):
    """The registered encoder's version behind an alias, and the run that trained it."""

    name: str = Field(description="the registered model")
    alias: str
    version: str
    source_run_id: str = Field(description="the MLflow run that logged this version")
    model_uri: str = Field(description="``models:/<name>/<version>``: the version, pinned")
    output: str = Field(description="where the training run published its outputs")


def find_champion(alias: str) -> Champion | None:
    """The model version behind ``alias`` and its training run; None before the first."""
    version = aliased_version(alias)
    if version is None:
        return None
    settings = get_settings()
    output = MlflowClient(settings.tracking_uri).get_run(version.run_id).data.params.get("output")
    if not output:
        raise ValueError(f"champion run {version.run_id} has no 'output' parameter")
    return Champion(
        name=settings.registered_model,
        alias=alias,
        version=str(version.version),
        source_run_id=version.run_id,
        model_uri=f"models:/{settings.registered_model}/{version.version}",
        output=output,
    )


def run_model_version(run_id: str) -> str:
    """The registered encoder version a run created."""
    client = MlflowClient(get_settings().tracking_uri)
    name = get_settings().registered_model
    versions = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    if not versions:
        raise LookupError(f"run {run_id} registered no version of model '{name}'")
    return str(max(int(v.version) for v in versions))


def _window(catalog: Catalog, entity_columns: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Members (txn_id, cluster, entities) and their transactions joined with session stats."""
    clusters = catalog.load_frame("clusters", ["txn_id", "cluster"])
    txns = catalog.load_frame("transactions").set_index("txn_id").loc[clusters["txn_id"]]
    behaviour = catalog.load_frame("behaviour", ["txn_id", *BEHAVIOUR_COLUMNS])
    behaviour = behaviour.set_index("txn_id").loc[clusters["txn_id"]]
    missing = [c for c in entity_columns if c not in txns]
    if missing:
        raise KeyError(f"{catalog.uri('transactions')}: no entity column(s) {missing}")
    members = clusters.assign(**{c: txns[c].to_numpy() for c in entity_columns})
    return members, pd.concat([txns, behaviour], axis=1)


def comparable_sets(
    champion: Catalog, challenger: Catalog, entity_columns: list[str]
) -> tuple[ClusterSet, ClusterSet]:
    """Both runs' clusters, centred in one space.

    Each run's hybrid vectors use its own encoder, so they cannot be compared; the intuitive
    features (encoded the challenger's way) and session pace can, standardised over both runs.
    """
    spec = FeatureSpec.from_dict(challenger.load_json("feature_spec"))
    windows = [_window(c, entity_columns) for c in (champion, challenger)]
    features = [np.asarray(transform_features(spec, frame)) for _, frame in windows]
    pace = [np.log1p(frame[BEHAVIOUR_COLUMNS].fillna(0).clip(lower=0)) for _, frame in windows]
    space = hybrid_vectors(
        [np.vstack(features), np.vstack([p.to_numpy() for p in pace])], [1.0, 1.0]
    )
    n_champion = len(windows[0][0])
    sets = []
    for (members, _), vectors, catalog in zip(
        windows, (space[:n_champion], space[n_champion:]), (champion, challenger), strict=True
    ):
        keep = members["cluster"].to_numpy() >= 0
        centroids = pd.DataFrame(vectors[keep]).groupby(members["cluster"].to_numpy()[keep]).mean()
        risk = catalog.load_frame("risk", ["cluster", "risky"])
        risky = frozenset(int(c) for c in risk.loc[risk["risky"], "cluster"])
        sets.append(ClusterSet(members, centroids, risky))
    return sets[0], sets[1]


def entity_columns_of(catalog: Catalog, params: LineageParams) -> list[str]:
    """The given columns, else the account (``user_id``, not a feature) and id-like features."""
    if params.entity_columns is not None:
        return params.entity_columns
    spec = FeatureSpec.from_dict(catalog.load_json("feature_spec"))
    columns = catalog.load_table("transactions").column_names
    account = ["user_id"] if "user_id" in columns else []
    return account + [c.name for c in spec.columns if c.kind == "frequency"]


@task(name="lineage")
def lineage(
    output_root: str, run_id: str, champion: Champion | None, params: LineageParams
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The lineage table against the champion's clusters, and the alerts it raises."""
    logger = get_run_logger()
    challenger = Catalog(output_root)
    entities = entity_columns_of(challenger, params)
    if champion is None:
        logger.info("no champion yet: every cluster is new, nothing to alert on")
        return pd.DataFrame(columns=["cluster", "status"]), pd.DataFrame(columns=ALERT_COLUMNS)
    previous, current = comparable_sets(Catalog(champion.output), challenger, entities)
    config = LineageConfig(
        min_member_jaccard=params.min_member_jaccard,
        min_entity_jaccard=params.min_entity_jaccard,
        max_centroid_distance=params.max_centroid_distance,
        growth=params.growth,
    )
    table = cluster_lineage(previous, current, entities, config)
    counts = table["status"].value_counts().reindex(STATUSES, fill_value=0)
    tracker = RunLogger(run_id)
    tracker.params({"champion.run_id": champion.source_run_id, "lineage.entity_columns": entities})
    tracker.metrics({f"lineage.{s}": float(n) for s, n in counts.items()})
    tracker.metrics({"lineage.alerts": float(table["alert"].sum())})
    tracker.text(table.to_csv(index=False), "champion/lineage.csv")
    logger.info(
        "lineage against champion v%s (run %s): %s",
        champion.version,
        champion.source_run_id,
        ", ".join(f"{n} {s}" for s, n in counts.items()),
    )
    risky = {c["cluster"]: c for c in challenger.load_json("summary")["risky_clusters"]}
    alerts = table[table["alert"]].assign(
        why=lambda t: [risky.get(c, {}).get("basis", "") for c in t["cluster"]],
        rules=lambda t: [" OR ".join(risky.get(c, {}).get("rules", [])) for c in t["cluster"]],
    )
    return table, alerts[ALERT_COLUMNS].reset_index(drop=True)


def _finite(value: Any) -> bool:
    return value is not None and isinstance(value, int | float) and math.isfinite(value)


def check_gates(
    challenger: dict[str, float], champion: dict[str, float] | None, gates: QualityGates
) -> list[str]:
    """Failed gates, in words (empty: promote). Metrics use the names the flow logs."""
    failed = []
    losses = challenger.get("pretrain.val_loss")
    if not _finite(losses):
        failed.append(f"validation loss is not finite ({losses})")
    noise = challenger.get("cluster.noise_share", math.nan)
    if not noise <= gates.max_noise_share:
        failed.append(f"noise share {noise:.2f} > {gates.max_noise_share:.2f}")
    n_clusters = challenger.get("cluster.n_clusters", 0)
    if n_clusters < gates.min_clusters:
        failed.append(f"{n_clusters:.0f} clusters < {gates.min_clusters}")
    key = f"quality.{gates.quality_metric}"
    ours = challenger.get(key)
    theirs = (champion or {}).get(key)
    if _finite(theirs) and not (_finite(ours) and ours >= theirs - gates.max_quality_drop):
        failed.append(
            f"{gates.quality_metric} {ours} is more than {gates.max_quality_drop} below the "
            f"champion's {theirs:.3f}"
        )
    return failed


@task(name="promote")
def promote(run_id: str, champion: Champion | None, params: ChampionParams) -> dict[str, Any]:
    """Apply the quality gates; move the alias when they pass. Logged to the run either way."""
    client = MlflowClient(get_settings().tracking_uri)
    name = get_settings().registered_model
    version = run_model_version(run_id)
    ours = client.get_run(run_id).data.metrics
    losses = [m.value for m in client.get_metric_history(run_id, "pretrain.val_loss")]
    finite = bool(losses) and all(math.isfinite(v) for v in losses)
    ours = {**ours, "pretrain.val_loss": min(losses) if finite else math.nan}
    theirs = client.get_run(champion.source_run_id).data.metrics if champion else None
    failed = check_gates(ours, theirs, params.gates)
    if not failed:
        client.set_registered_model_alias(name, params.alias, version)
    decision = {
        "promoted": not failed,
        "failed_gates": failed,
        "alias": params.alias,
        "model": name,
        "version": version,
        "previous_champion": champion.version if champion else None,
        "gates": params.gates.model_dump(),
    }
    tracker = RunLogger(run_id)
    tracker.json(decision, "champion/decision.json")
    tracker.tags({"shoal.champion": "promoted" if not failed else "kept"})
    client.set_model_version_tag(name, version, "shoal.gates", "passed" if not failed else "failed")
    outcome = f"is now '{params.alias}'" if not failed else f"kept out: {'; '.join(failed)}"
    get_run_logger().info("%s v%s %s", name, version, outcome)
    return decision
