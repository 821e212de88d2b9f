"""Embed: every transaction's session through the pretrained encoder, keyed by ``txn_id``.

In-process for data that fits one machine; Ray Data ``map_batches`` when a Ray cluster is
configured, so batch inference spreads over its nodes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from prefect import get_run_logger, task
from pydantic import BaseModel, Field

from catalog.datasets import Catalog
from infra.memory import STAGE_HOOKS
from infra.ray import ensure_ray, on_cluster
from infra.tracking import RunLogger
from ops.sequence import embed, embed_concatenated
from tasks.io import log_dataset, split_lists
from tasks.pretrain import PretrainResult
from tasks.pretrain_worker import load_encoder


class EmbedParams(BaseModel):
    """How sequences are embedded: batch size, and whether on Ray Data."""

    batch_size: int = Field(2048, ge=1)
    use_ray_data: bool | None = Field(None, description="default: when a Ray cluster is set")


class EncodeBatch:
    """Ray Data callable: loads the encoder once per actor, then embeds batches of sequences."""

    def __init__(self, checkpoint: str, encoder_config: dict[str, Any], max_len: int) -> None:
        self.encoder = load_encoder(checkpoint, encoder_config)
        self.max_len = max_len

    def __call__(self, batch: pa.Table) -> dict[str, np.ndarray]:
        """Embed one batch of sequences; ``txn_id`` and ``embedding`` columns out."""
        vectors = embed(
            self.encoder,
            split_lists(batch.column("tokens"), np.int64),
            split_lists(batch.column("dwell"), np.float32),
            self.max_len,
        )
        return {"txn_id": batch.column("txn_id").to_numpy(zero_copy_only=False), "vector": vectors}


def _embed_on_ray(output_root: str, pretrained: PretrainResult, batch_size: int) -> tuple:
    import ray.data

    ensure_ray()
    table = Catalog(output_root).load_table("sequences", ["txn_id", "tokens", "dwell"])
    out = (
        ray.data.from_arrow(table)
        .map_batches(
            EncodeBatch,
            fn_constructor_args=(
                pretrained.checkpoint,
                pretrained.encoder_config,
                pretrained.max_len,
            ),
            batch_size=batch_size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=4),  # Ray: 1 model per actor
        )
        .to_pandas()
    )
    return out["txn_id"].to_numpy(dtype=str), np.stack(out["vector"].to_numpy()).astype(np.float32)


@task(name="embed", **STAGE_HOOKS)
def embed_sequences(
    output_root: str, pretrained: PretrainResult, params: EmbedParams, run_id: str
) -> str:
    """Embed every transaction's session with the pretrained encoder, keyed by ``txn_id``.

    Returns
    -------
    str
        The digest of the ``embeddings`` dataset.
    """
    use_ray = on_cluster() if params.use_ray_data is None else params.use_ray_data
    if use_ray:
        txn_ids, vectors = _embed_on_ray(output_root, pretrained, params.batch_size)
    else:
        txn_ids, lists = Catalog(output_root).load_lists(
            "sequences", {"tokens": np.int64, "dwell": np.float32}
        )
        (tokens, offsets), (dwell, _) = lists["tokens"], lists["dwell"]
        encoder = load_encoder(pretrained.checkpoint, pretrained.encoder_config)
        vectors = embed_concatenated(
            encoder, tokens, dwell, offsets[1:], pretrained.max_len, params.batch_size
        )
    catalog = Catalog(output_root)
    digest = catalog.save_vectors("embeddings", txn_ids, vectors)
    log_dataset(RunLogger(run_id), catalog, "embeddings", "embeddings")
    get_run_logger().info(
        "embedded %d sequences (%s) into %d dimensions",
        len(txn_ids),
        "Ray Data" if use_ray else "in-process",
        vectors.shape[1],
    )
    return digest
