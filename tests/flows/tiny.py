"""The smallest pipeline configuration that still exercises every engine (Ray Train DDP too)."""

from __future__ import annotations

from typing import Any

from flows.params import PipelineParams


def tiny_settings(
    epochs: int = 1, sequences: int = 300, workers: int = 1, partitions: int = 2
) -> dict[str, Any]:
    """A 16-unit encoder on at most ``sequences`` sessions, small clusters.

    Plain data, so it can also travel as a Prefect deployment's parameters.
    """
    return {
        "ingest": {"partitions": partitions},
        "pretrain": {
            "epochs": epochs,
            "max_train_sequences": sequences,
            "num_workers": workers,
            "encoder": {"hidden_size": 16, "embedding_dim": 8},
        },
        "cluster": {"min_cluster_size": 15, "min_samples": 5},
    }


def tiny_params(
    epochs: int = 1, sequences: int = 300, workers: int = 1, partitions: int = 2
) -> PipelineParams:
    """:func:`tiny_settings`, validated."""
    return PipelineParams.model_validate(tiny_settings(epochs, sequences, workers, partitions))
