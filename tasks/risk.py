"""Evaluate: cluster quality, which clusters are risky, and which unselected tree nodes are."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from prefect import get_run_logger, task
from pydantic import BaseModel, Field

from catalog.datasets import Catalog
from infra.memory import STAGE_HOOKS
from infra.tracking import RunLogger
from ops.evaluation import cluster_quality
from ops.features import FeatureSpec
from ops.phdbscan import PHDBSCAN
from ops.risk import (
    BranchConfig,
    CoordinationConfig,
    LabelConfig,
    RiskConfig,
    SiblingConfig,
    TreeNodes,
    assess_risk,
    cluster_parents,
    pool_siblings,
    risky_branches,
)
from tasks.io import in_order, join_on_ids, log_dataset


class RiskParams(BaseModel):
    """When a cluster, or a parent pooling its siblings, counts as risky."""

    min_labelled: int = Field(5, ge=1, description="labelled members before labels can flag")
    min_fraud_rate: float = Field(0.2, ge=0, le=1, description="floor on the Wilson lower bound")
    min_lift: float = Field(3.0, ge=1, description="Wilson lower bound over base rate")
    coordination_threshold: float = Field(0.4, ge=0, le=1)
    id_columns: list[str] | None = Field(
        None, description="shared-id signals; default: high-cardinality text columns"
    )
    age_column: str = "account_age_days"
    max_parent_share: float = Field(
        0.05, ge=0, le=1, description="sibling clusters under a parent this small are pooled"
    )
    branch_precision: float = Field(
        0.95, ge=0, le=1, description="labelled precision a branch of a non-risky cluster needs"
    )
    quality_sample: int = Field(5000, ge=100)


def load_clusterer(catalog: Catalog) -> PHDBSCAN:
    """The run's fitted pHDBSCAN model (condensed tree, labels, prediction tables).

    A local catalog's file is read where it lies (`Catalog.local_file`): the model holds the
    training rows (256 MB at 1M x 64), and copying them first cost ~0.5-1 s a load at 1M.
    """
    with catalog.local_file("clusterer") as path:
        return PHDBSCAN.load(path)


def transactions_view(
    catalog: Catalog,
    transaction_columns: list[str] | None = None,
    behaviour: bool = True,
    arrow_lists: bool = False,
) -> pd.DataFrame:
    """Join accepted transactions with their cluster and session stats, in clustering order.

    ``transaction_columns``: only these columns of the transactions (all by default);
    ``behaviour``: whether to join the session statistics. A stage that reads a few columns
    of a million rows holds only those. ``arrow_lists``: keep the session's path as Arrow
    lists (``pd.ArrowDtype``) rather than a NumPy array of page names per row, for a stage
    that counts paths (``path_codes``) or reads those of a few rows: no Python string per
    page (8M at 1M rows).
    """
    view = catalog.load_frame("assignments")
    read = None if transaction_columns is None else ["txn_id", *transaction_columns]
    view = join_on_ids(view, catalog.load_frame("transactions", read))
    if behaviour:
        table = catalog.load_table("behaviour")
        if arrow_lists:
            table = _whole_lists(table)
        stats = table.to_pandas(types_mapper=_arrow_lists if arrow_lists else None)
        view = join_on_ids(view, stats)
    if "label" not in view:
        view["label"] = np.nan
    return view


def _is_list(kind: pa.DataType) -> bool:
    return pa.types.is_list(kind) or pa.types.is_large_list(kind)


def _arrow_lists(kind: pa.DataType) -> pd.ArrowDtype | None:
    """``to_pandas``' mapper that keeps list columns in Arrow."""
    return pd.ArrowDtype(kind) if _is_list(kind) else None


def _whole_lists(table: pa.Table) -> pa.Table:
    """``table`` with each list column in one chunk, not one per Parquet row group.

    Arrow's ``take`` of some rows joins a column's chunks first, on every call: explain's
    narratives take each risky cluster's paths, 19 ms a cluster at 3M rows against 0.1 ms
    from one chunk (7.8 s of the stage, benchmarks/README.md).
    """
    columns = [c.combine_chunks() if _is_list(c.type) else c for c in table.columns]
    return pa.table(columns, names=table.column_names)


@task(name="evaluate", **STAGE_HOOKS)
def cluster_risk(output_root: str, params: RiskParams, run_id: str) -> dict[str, float]:
    """Measure cluster quality and judge every cluster and its siblings' parent.

    Returns
    -------
    dict
        The metrics logged to the run (quality, label and risk figures).
    """
    catalog = Catalog(output_root)
    view = transactions_view(catalog, arrow_lists=True)
    spec = FeatureSpec.from_dict(catalog.load_json("feature_spec"))
    id_columns = params.id_columns
    if id_columns is None:
        id_columns = [c.name for c in spec.columns if c.kind == "frequency"]
    emb_ids, embeddings = catalog.load_vectors("embeddings")
    embeddings = in_order(embeddings, emb_ids, view["txn_id"])
    config = RiskConfig(
        labels=LabelConfig(
            min_labelled=params.min_labelled,
            min_rate=params.min_fraud_rate,
            min_lift=params.min_lift,
        ),
        coordination=CoordinationConfig(score_threshold=params.coordination_threshold),
    )
    judged = {
        "id_columns": id_columns,
        "embeddings": embeddings,
        "age_column": params.age_column,
        "config": config,
    }
    risk, branches = judge_tree(catalog, view, judged, params)
    catalog.save_table("branches", branch_members(view, branches))
    metrics = {
        f"quality.{k}": float(v)
        for k, v in cluster_quality(
            lambda rows: catalog.load_vector_rows("hybrid", rows),  # only the sample is read
            view["cluster"].to_numpy(),
            params.quality_sample,
        ).items()
    }
    metrics.update(label_metrics(view, set(risk.loc[risk["risky"], "cluster"])))
    metrics["risk.n_risky_clusters"] = float(risk["risky"].sum())
    metrics["risk.n_risky_branches"] = float(len(branches))
    catalog.save_table("risk", risk)
    catalog.save_json("metrics", metrics)

    tracker = RunLogger(run_id)
    tracker.params(params.model_dump(), prefix="risk.")
    tracker.metrics(metrics)
    log_dataset(tracker, catalog, "risk", "evaluate")
    get_run_logger().info(
        "%d of %d clusters risky (%d by labels, %d by coordination, %d with their siblings); "
        "%d risky nodes of the condensed tree besides",
        int(risk["risky"].sum()),
        int((risk["cluster"] >= 0).sum()),
        int(risk["label_flag"].sum()),
        int(risk["coordination_flag"].sum()),
        int(risk["sibling_flag"].sum()),
        len(branches),
    )
    return metrics


def judge_tree(
    catalog: Catalog, view: pd.DataFrame, judged: dict[str, Any], params: RiskParams
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Risk per cluster with its siblings pooled, and the risky branches of the others.

    The clusterer (its training rows among it) is loaded here and freed on return, before
    the stage loads anything else.
    """
    clusterer = load_clusterer(catalog)
    condensed = clusterer.condensed_tree_.to_numpy()  # a copy each call
    parents = cluster_parents(condensed, clusterer.labels_)
    risk = pool_siblings(
        view,
        assess_risk(view, **judged),
        parents,
        siblings=SiblingConfig(max_parent_share=params.max_parent_share),
        **judged,
    )
    branches = risky_branches(
        view,
        TreeNodes.from_raw(condensed, len(view)),
        parents["node"].to_dict(),
        risk.loc[risk["risky"], "cluster"].tolist(),
        branches=BranchConfig(
            max_share=params.max_parent_share, min_precision=params.branch_precision
        ),
    )
    return risk, branches


def branch_members(view: pd.DataFrame, branches: pd.DataFrame) -> pd.DataFrame:
    """One row per transaction in a risky branch: ``txn_id``, ``node``, ``cluster``, reason."""
    node = branches.attrs["point_node"]
    inside = node >= 0
    reason = branches.set_index("node")["risk_reason"]
    return pd.DataFrame(
        {
            "txn_id": view["txn_id"].to_numpy()[inside],
            "node": node[inside],
            "cluster": view["cluster"].to_numpy()[inside],
            "risk_reason": reason.reindex(node[inside]).to_numpy(dtype=object),
        }
    )


def label_metrics(view: pd.DataFrame, risky: set[int]) -> dict[str, float]:
    """Where labels exist: share of confirmed fraud inside risky clusters, and their precision."""
    label = pd.to_numeric(view["label"], errors="coerce")
    labelled = label.notna()
    if not labelled.any():
        return {}
    in_risky = view["cluster"].isin(risky)
    fraud = label == 1
    caught = float((fraud & in_risky).sum() / max(fraud.sum(), 1))
    precision = float(label[in_risky & labelled].mean()) if (in_risky & labelled).any() else np.nan
    return {
        "labels.fraud_caught": caught,
        "labels.risky_precision": precision,
        "labels.base_rate": float(label.mean()),
        "labels.labelled_share": float(labelled.mean()),
    }
