"""Features: intuitive features encoded and joined with the sequence embedding (hybrid vector).

Also each session's statistics (``behaviour``), which the later stages read.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
from prefect import get_run_logger, task
from pydantic import BaseModel, Field

from catalog.datasets import Catalog, arrow_ids
from catalog.schemas import NON_FEATURE_COLUMNS
from infra.memory import STAGE_HOOKS
from infra.tracking import RunLogger
from ops.features import (
    DWELL_FIT_COLUMNS,
    PageDwell,
    Ragged,
    apply_hybrid,
    fit_block,
    fit_hybrid,
    fit_page_dwell,
    fit_transform_features,
    session_stats,
)
from tasks.io import in_order, log_dataset


class FeatureParams(BaseModel):
    """How intuitive features are encoded and weighted against the embedding."""

    embedding_weight: float = Field(
        1.0, ge=0, description="the behaviour block's share of distance"
    )
    feature_weight: float = Field(1.0, ge=0, description="the intuitive block's share of distance")
    dwell_fit_weight: float = Field(
        0.0,
        ge=0,
        description="share of distance of how well dwell fits the pages (off: 0.5 and more "
        "blurred the clusters and did not gather the content-blind rings, benchmarks/README)",
    )
    max_categories: int = Field(
        12, ge=1, description="text columns with more values use reuse counts"
    )


@task(name="features", **STAGE_HOOKS)
def build_features(output_root: str, params: FeatureParams, run_id: str) -> str:
    """Encode the intuitive features and join them with the embeddings as hybrid vectors.

    Returns
    -------
    str
        The digest of the ``hybrid`` dataset.
    """
    catalog = Catalog(output_root)
    fit, fit_ids, page_dwell = save_behaviour(catalog)  # first: sessions freed before the rest
    txn_ids, embeddings = catalog.load_vectors("embeddings")
    # only the columns that can be features: the others were 0.4 s of fresh pages at 3M rows
    transactions = catalog.load_table("transactions", leave_out=NON_FEATURE_COLUMNS - {"txn_id"})
    # the ids stay Arrow strings, used only to compare orders (benchmarks/README.md)
    frame = transactions.drop_columns(["txn_id"]).to_pandas()
    spec, features = fit_transform_features(
        in_order(frame, transactions.column("txn_id"), txn_ids),
        NON_FEATURE_COLUMNS,
        params.max_categories,
    )
    blocks = [embeddings, features, fit_block(in_order(fit, fit_ids, txn_ids))]
    weights = [params.embedding_weight, params.feature_weight, params.dwell_fit_weight]
    scaling = fit_hybrid(blocks, weights)
    catalog.save_json("feature_spec", spec.to_dict())
    catalog.save_json("page_dwell", page_dwell.to_dict())  # scoring measures new sessions with it
    catalog.save_json("hybrid_scaling", scaling.to_dict())  # scoring maps new data with it
    digest = catalog.save_vector_rows(  # a block at a time: never the whole matrix
        "hybrid",
        txn_ids,
        scaling.width,
        lambda start, stop: apply_hybrid(scaling, [block[start:stop] for block in blocks]),
    )
    tracker = RunLogger(run_id)
    tracker.params(params.model_dump(), prefix="features.")
    tracker.params({"features.encoded": ",".join(spec.output_names)})
    log_dataset(tracker, catalog, "feature_spec", "features")
    log_dataset(tracker, catalog, "hybrid_scaling", "features")
    log_dataset(tracker, catalog, "page_dwell", "features")
    get_run_logger().info(
        "hybrid vectors: %d embedding + %d feature dimensions from columns %s + %s (weight %g)",
        embeddings.shape[1],
        features.shape[1],
        [c.name for c in spec.columns],
        DWELL_FIT_COLUMNS,
        params.dwell_fit_weight,
    )
    return digest


def save_behaviour(catalog: Catalog) -> tuple[pd.DataFrame, pa.ChunkedArray, PageDwell]:
    """Fit each page's typical dwell and write each session's statistics (``behaviour``).

    The risk and explain stages read the statistics; the hybrid vector takes the dwell fit.
    The sessions are freed on return.

    Returns
    -------
    fit : DataFrame
        `dwell_fit`'s columns, a row per session.
    txn_ids : pyarrow.ChunkedArray
        The sessions' ``txn_id``, in the order of ``fit``'s rows.
    page_dwell : PageDwell
        The window's typical dwell per page.
    """
    # token ids as ingest stores them (int32): widened to int64 they wrote 408 MB at 3M
    # sessions, 1.3 s of page faults
    txn_ids, lists = catalog.load_lists("sequences", {"tokens": np.int32, "dwell": np.float32})
    tokens, dwell = Ragged(*lists["tokens"]), Ragged(*lists["dwell"])
    vocabulary = catalog.load_json("vocabulary")
    page_dwell = fit_page_dwell(tokens, dwell, vocabulary)
    stats = session_stats(tokens, dwell, vocabulary, page_dwell=page_dwell)
    catalog.save_table("behaviour", stats.append_column("txn_id", arrow_ids(txn_ids)))
    return stats.select(DWELL_FIT_COLUMNS).to_pandas(), txn_ids, page_dwell
