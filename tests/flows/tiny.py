"""The smallest pipeline configuration that still exercises every engine (Ray Train DDP too)."""

from __future__ import annotations

from flows.params import PipelineParams


def tiny_params() -> PipelineParams:
    """1 epoch of a 16-unit encoder on at most 300 sequences, 1 Ray Train worker, 2 partitions.

    (Two DDP workers are exercised by ``test_fraud_clustering.py``.)
    """
    return PipelineParams.model_validate(
        {
            "ingest": {"partitions": 2},
            "pretrain": {
                "epochs": 1,
                "max_train_sequences": 300,
                "num_workers": 1,
                "encoder": {"hidden_size": 16, "embedding_dim": 8},
            },
            "cluster": {"min_cluster_size": 15, "min_samples": 5},
        }
    )
