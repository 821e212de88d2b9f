"""Pretrain: the time-attention Bi-LSTM, self-supervised, on Ray Train (PyTorch DDP).

This module drives the run (parameters, the trainer, caching, MLflow); what each worker runs
is in ``tasks.pretrain_worker``.
"""

from __future__ import annotations

import json
import posixpath
import tempfile
from pathlib import Path
from typing import Any, Literal

import ray.train
import ray.train.torch
import torch
from prefect import get_run_logger, task
from prefect.cache_policies import INPUTS
from pydantic import BaseModel, Field

from catalog.datasets import Catalog
from infra.durable import durable_uri, ray_storage, result_storage
from infra.ray import ensure_ray
from infra.settings import get_settings
from infra.tracking import RunLogger, log_torch_model
from ops.sequence import PackedSequenceEncoder, pack_sequences
from tasks.io import load_sequences
from tasks.pretrain_progress import epoch_progress
from tasks.pretrain_worker import STATE_FILE, load_encoder, train_loop_per_worker
from tasks.training_identity import training_code_digest, training_name


class EncoderParams(BaseModel):
    """Shape of the time-attention Bi-LSTM encoder."""

    token_dim: int = Field(32, ge=2)
    time_dim: int = Field(16, ge=2)
    hidden_size: int = Field(32, ge=2)
    embedding_dim: int = Field(32, ge=2)
    num_layers: int = Field(1, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)


class PretrainParams(BaseModel):
    """How the encoder is pretrained: objective, epochs, batches, workers and failures."""

    objective: Literal["reconstruction", "contrastive"] = "reconstruction"
    temperature: float = Field(0.1, gt=0, description="NT-Xent temperature (contrastive)")
    encoder: EncoderParams = EncoderParams()
    epochs: int = Field(5, ge=1)
    batch_size: int = Field(256, ge=2, description="global batch, split across workers")
    learning_rate: float = Field(3e-3, gt=0)
    val_fraction: float = Field(0.1, gt=0, lt=0.5)
    max_train_sequences: int = Field(
        12_000, ge=100, description="sample size for self-supervised fitting; all are embedded"
    )
    patience: int = Field(2, ge=1, description="epochs without validation gain before stopping")
    num_workers: int = Field(2, ge=1)
    use_gpu: bool | None = Field(None, description="default: when CUDA is present")
    keep_checkpoints: int = Field(2, ge=1)
    max_failures: int = Field(2, ge=0, description="worker failures survived by resuming")
    seed: int = 0


class PretrainResult(BaseModel):
    """What pretraining hands the next stages: the checkpoint, the registered model and history."""

    checkpoint: str
    model_uri: str
    history: list[dict[str, float]]
    encoder_config: dict[str, Any]
    max_len: int


def run_trainer(config: dict[str, Any], params: PretrainParams, name: str) -> ray.train.Result:
    """A reused ``name`` resumes that training run from its storage; a new name starts afresh."""
    use_gpu = torch.cuda.is_available() if params.use_gpu is None else params.use_gpu
    storage_path, filesystem = ray_storage()
    with epoch_progress(params.epochs) as progress:
        trainer = ray.train.torch.TorchTrainer(
            train_loop_per_worker,
            train_loop_config=config | progress,
            scaling_config=ray.train.ScalingConfig(num_workers=params.num_workers, use_gpu=use_gpu),
            run_config=ray.train.RunConfig(
                name=name,
                storage_path=storage_path,
                storage_filesystem=filesystem,
                checkpoint_config=ray.train.CheckpointConfig(
                    num_to_keep=params.keep_checkpoints,
                    checkpoint_score_attribute="val_loss",
                    checkpoint_score_order="min",
                ),
                failure_config=ray.train.FailureConfig(max_failures=params.max_failures),
            ),
        )
        return trainer.fit()


def build_config(
    output_root: str,
    vocabulary_size: int,
    max_len: int,
    params: PretrainParams,
    run_id: str | None,
) -> dict[str, Any]:
    """The worker loop's config; without ``run_id`` nothing is logged to MLflow."""
    return {
        **params.model_dump(exclude={"encoder"}),
        "encoder": {"vocab_size": vocabulary_size + 2, **params.encoder.model_dump()},
        "output_root": output_root,
        "max_len": max_len,
        "run_id": run_id,
        "tracking_uri": get_settings().tracking_uri,
        "threads_per_worker": max(1, torch.get_num_threads() // params.num_workers),
    }


class Training(BaseModel):
    """What a finished Ray Train run leaves: cached by Prefect, so it must stay small."""

    name: str
    checkpoint: str
    history: list[dict[str, float]]
    starts: list[int]


def train(config: dict[str, Any], params: PretrainParams, name: str) -> Training:
    """Fit (or resume the run called ``name``) and return its best checkpoint and history."""
    result = run_trainer(config, params, name)
    best = result.get_best_checkpoint(metric="val_loss", mode="min")
    if best is None or result.checkpoint is None:
        raise RuntimeError(f"pretraining produced no checkpoint: {result.error}")
    # Ray keeps only the best checkpoints' metrics; the latest checkpoint carries every epoch.
    with result.checkpoint.as_directory() as directory:
        latest = torch.load(Path(directory) / STATE_FILE, weights_only=True)
    return Training(
        name=name,
        checkpoint=durable_uri(best.path),
        history=latest["history"],
        starts=latest["starts"],
    )


def has_checkpoint(name: str) -> bool:
    """Tell whether the Ray Train run ``name`` is in storage with a checkpoint.

    Returns
    -------
    bool
        True where a checkpoint exists to resume from or reuse.
    """
    storage_path, filesystem = ray_storage()
    try:
        stored = ray.train.Result.from_path(posixpath.join(storage_path, name), filesystem)
    except RuntimeError:  # no such run, or one that never recorded a checkpoint
        return False
    return stored.checkpoint is not None


# The name digests the config and parameters that matter (tasks.training_identity).
@task(name="pretrain-fit", cache_policy=INPUTS - "config" - "params", persist_result=True)
def _fit(config: dict[str, Any], params: PretrainParams, name: str) -> Training:
    return train(config, params, name)


@task(name="pretrain")
def pretrain(
    output_root: str, vocabulary_size: int, max_len: int, params: PretrainParams, run_id: str
) -> PretrainResult:
    """Train, or resume the interrupted training of this very input, or reuse a finished one.

    The Ray Train run's name is a digest of what determines the model (see ``training_name``),
    so rerunning a killed command restores that run from its storage and the finished fit is a
    Prefect cache hit. This task itself always runs: it logs the model to this MLflow run.
    """
    logger = get_run_logger()
    ensure_ray()
    config = build_config(output_root, vocabulary_size, max_len, params, run_id)
    encoder_config = config["encoder"]
    tracker = RunLogger(run_id)
    tracker.params(params.model_dump(), prefix="pretrain.")
    code = training_code_digest()
    name = training_name(output_root, vocabulary_size, max_len, params.model_dump(), code)
    fit = _fit.with_options(refresh_cache=not has_checkpoint(name), result_storage=result_storage())
    state = fit(config, params, name, return_state=True)
    training: Training = state.result()
    reused = state.name == "Cached"
    _log_missing_epochs(tracker, training.history)
    tracker.tags(
        {
            "shoal.pretrain.run": name,
            "shoal.pretrain.reused": str(reused),
            "shoal.pretrain.starts": json.dumps(training.starts),
        }
    )
    encoder = load_encoder(training.checkpoint, encoder_config)
    example = pack_sequences(*load_sequences(output_root, limit=4)[1:], max_len=max_len)
    with tempfile.TemporaryDirectory() as tmp:
        vocabulary = Path(tmp) / "vocabulary.json"  # versioned with the model it indexes
        vocabulary.write_bytes(Catalog(output_root).load_bytes("vocabulary"))
        model_uri = log_torch_model(
            run_id,
            PackedSequenceEncoder(encoder),
            name="encoder",
            input_example=example,
            extra_files=[str(vocabulary)],
            registered_model_name=get_settings().registered_model,
        )
    history = training.history
    logger.info(
        "pretrained %d epochs (%s; epochs started at %s); best val_loss %.4f; encoder logged as %s",
        len(history),
        "reused a finished training" if reused else name,
        training.starts,
        min(h["val_loss"] for h in history),
        model_uri,
    )
    return PretrainResult(
        checkpoint=training.checkpoint,
        model_uri=model_uri,
        history=history,
        encoder_config=encoder_config,
        max_len=max_len,
    )


def _log_missing_epochs(tracker: RunLogger, history: list[dict[str, float]]) -> None:
    """Epochs trained by an earlier, killed process (or reused) still belong in this run."""
    logged = tracker.client.get_metric_history(tracker.run_id, "pretrain.val_loss")
    steps = {m.step for m in logged}
    for h in history:
        if int(h["epoch"]) not in steps:
            losses = {f"pretrain.{k}": h[k] for k in ("train_loss", "val_loss")}
            tracker.metrics(losses, step=int(h["epoch"]))
