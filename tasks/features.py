"""Features: intuitive features encoded and joined with the sequence embedding (hybrid vector).

Also each session's statistics (``behaviour``), which the later stages read.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
from prefect import get_run_logger, task
from pydantic import BaseModel, Field

from catalog.datasets import Catalog
from catalog.schemas import NON_FEATURE_COLUMNS
from infra.memory import STAGE_HOOKS
from infra.tracking import RunLogger
from ops.features import (
    DWELL_FIT_COLUMNS,
    PageDwell,
    apply_hybrid,
    fit_block,
    fit_hybrid,
    fit_page_dwell,
    fit_transform_features,
    session_stats,
)
from tasks.io import load_sequences, log_dataset, same_order


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
    fit, page_dwell = save_behaviour(catalog)  # first: the sessions are freed before the rest
    txn_ids, embeddings = catalog.load_vectors("embeddings")
    transactions = catalog.load_frame("transactions").set_index("txn_id", drop=False)
    transactions = _in_order(transactions, txn_ids)
    spec, features = fit_transform_features(
        transactions, NON_FEATURE_COLUMNS, params.max_categories
    )
    blocks = [embeddings, features, fit_block(_in_order(fit, txn_ids))]
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


def _in_order(frame: pd.DataFrame, txn_ids: np.ndarray) -> pd.DataFrame:
    """``frame.loc[txn_ids]``: its rows in the embeddings' order (compared first, `same_order`)."""
    return frame if same_order(frame.index.to_numpy(), txn_ids) else frame.loc[txn_ids]


def save_behaviour(catalog: Catalog) -> tuple[pd.DataFrame, PageDwell]:
    """Fit each page's typical dwell and write each session's statistics (``behaviour``).

    The risk and explain stages read the statistics; the hybrid vector takes the dwell fit.
    The sessions are freed on return.

    Returns
    -------
    fit : DataFrame
        `dwell_fit`'s columns, indexed by ``txn_id``.
    page_dwell : PageDwell
        The window's typical dwell per page.
    """
    txn_ids, tokens, dwell = load_sequences(catalog.root, ragged=True)
    vocabulary = catalog.load_json("vocabulary")
    page_dwell = fit_page_dwell(tokens, dwell, vocabulary)
    stats = session_stats(tokens, dwell, vocabulary, page_dwell=page_dwell)
    catalog.save_table(
        "behaviour", stats.append_column("txn_id", pa.array(txn_ids, pa.large_string()))
    )
    fit = stats.select(DWELL_FIT_COLUMNS).to_pandas()
    return fit.set_index(pd.Index(txn_ids, name="txn_id")), page_dwell
