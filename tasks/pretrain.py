"""Pretrain: the time-attention Bi-LSTM, self-supervised, on Ray Train (PyTorch DDP).

The worker loop is the plain PyTorch loop of ``ops.training``; the Ray-specific lines are marked
``# Ray:`` so the rest reads (and tests) as ordinary PyTorch.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
from mlflow.tracking import MlflowClient
from prefect import get_run_logger, task
from prefect.cache_policies import INPUTS
from pydantic import BaseModel, Field
from torch.utils.data import DataLoader, Subset
from torch.utils.data.distributed import DistributedSampler

from catalog.datasets import Catalog
from infra.ray import ensure_ray
from infra.settings import get_settings
from infra.tracking import RunLogger, log_torch_model
from ops.encoder import TimeAttentionBiLSTM
from ops.encoder_export import PackedSequenceEncoder, pack_sequences
from ops.objectives import build_objective
from ops.rng_state import capture_rng, restore_rng
from ops.sequence_batch import SequenceBatch, SequenceCollator, SequenceDataset
from ops.training import evaluate, set_seed, train_epoch
from tasks.io import load_sequences
from tasks.pretrain_lineage import CHECKPOINT_SNAPSHOT, training_code_digest, training_name

STATE_FILE = "state.pt"


class EncoderParams(BaseModel):
    token_dim: int = Field(32, ge=2)
    time_dim: int = Field(16, ge=2)
    hidden_size: int = Field(32, ge=2)
    embedding_dim: int = Field(32, ge=2)
    num_layers: int = Field(1, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)


class PretrainParams(BaseModel):
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
    checkpoint: str
    model_uri: str
    history: list[dict[str, float]]
    encoder_config: dict[str, Any]
    max_len: int


def _split(
    n: int, val_fraction: float, max_sequences: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded sample of at most ``max_sequences``, split into train and validation indices."""
    order = np.random.default_rng(seed).permutation(n)[:max_sequences]
    n = len(order)
    n_val = max(1, round(n * val_fraction))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _mean_across_workers(value: float, weight: float) -> float:
    """Weighted mean of per-worker means (workers may hold different numbers of sequences)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    t = torch.tensor([value * weight, weight], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t[0] / t[1].clamp(min=1e-12))


def build_encoder_objective(
    config: dict[str, Any], world_size: int = 1
) -> tuple[TimeAttentionBiLSTM, torch.nn.Module]:
    """Encoder + objective; under DDP the contrastive negatives come from every worker.

    Without gathering, NT-Xent on 2 workers sees half the negatives of 1 worker at the same
    global batch: a different, easier loss, not the same training spread over two processes.
    """
    encoder = TimeAttentionBiLSTM(**config["encoder"])
    extra: dict[str, Any] = {}
    if config["objective"] == "contrastive":
        extra = {"temperature": config["temperature"], "gather_distributed": world_size > 1}
    return encoder, build_objective(config["objective"], encoder, **extra)


def build_loaders(
    config: dict[str, Any], world_size: int, rank: int
) -> tuple[DataLoader, DataLoader]:
    """This worker's shards of the seeded train/validation split, at ``batch_size / world``.

    One global permutation (seeded, reshuffled each epoch by ``set_epoch``) is dealt
    round-robin to the workers, so step ``i`` of a W-worker run trains on exactly the
    sequences of step ``i`` of a 1-worker run: the runs differ only in float summation.
    Ray's own sampler would ignore the seed and pad the shards with repeated sequences.
    """
    _, tokens, dwell = load_sequences(config["output_root"])
    train_idx, val_idx = _split(
        len(tokens), config["val_fraction"], config["max_train_sequences"], config["seed"]
    )
    dataset = SequenceDataset(tokens, dwell)
    collate = SequenceCollator(config["max_len"])
    per_worker = max(2, config["batch_size"] // world_size)
    train = Subset(dataset, train_idx)
    val = Subset(dataset, val_idx)
    train_sampler = DistributedSampler(
        train, world_size, rank, shuffle=True, seed=config["seed"], drop_last=True
    )
    val_sampler = DistributedSampler(val, world_size, rank, shuffle=False)
    return (
        DataLoader(train, per_worker, sampler=train_sampler, collate_fn=collate, drop_last=True),
        DataLoader(val, per_worker, sampler=val_sampler, collate_fn=collate),
    )


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """One DDP worker: its shard of the data, a checkpoint each epoch, early stopping."""
    torch.set_num_threads(config["threads_per_worker"])
    context = ray.train.get_context()  # Ray: this worker's place in the group
    world_size, rank = context.get_world_size(), context.get_world_rank()
    set_seed(config["seed"])
    train_loader, val_loader = build_loaders(config, world_size, rank)
    train_sampler = train_loader.sampler
    n_train = len(train_sampler) // train_loader.batch_size * train_loader.batch_size
    n_val = len(val_loader.sampler)
    # Ray: device placement only; the sharding is ours (build_loaders).
    train_loader = ray.train.torch.prepare_data_loader(train_loader, add_dist_sampler=False)
    val_loader = ray.train.torch.prepare_data_loader(val_loader, add_dist_sampler=False)

    _, objective = build_encoder_objective(config, world_size)
    objective = ray.train.torch.prepare_model(objective)  # Ray: DDP wrap
    # Same initial weights everywhere (DDP broadcasts them anyway), then distinct dropout
    # and augmentation streams per worker.
    set_seed(config["seed"] + 7919 * rank)
    optimizer = torch.optim.AdamW(objective.parameters(), lr=config["learning_rate"])
    state: dict[str, Any] = {
        "epoch": 0,
        "best": math.inf,
        "stale": 0,
        "history": [],
        "starts": [],
    }

    # Ray: set when resuming, after a worker failure or in a new process with the same run name
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as directory:
            saved = torch.load(Path(directory) / STATE_FILE, weights_only=True)
        _unwrap(objective).load_state_dict(saved.pop("objective"))
        optimizer.load_state_dict(saved.pop("optimizer"))
        rng = saved.pop("rng", [])
        if len(rng) == world_size:  # a different world size trains on differently anyway
            restore_rng(rng[rank])
        state.update(saved)
    state["starts"] = [*state["starts"], state["epoch"]]

    tracker = MlflowClient(config["tracking_uri"]) if rank == 0 and config.get("run_id") else None
    # A run restored after it stopped early must not train on.
    while state["epoch"] < config["epochs"] and state["stale"] < config["patience"]:
        epoch = state["epoch"]
        train_sampler.set_epoch(epoch)
        batches = _inject_fault(train_loader, config.get("fault"), epoch, rank)
        started = time.perf_counter()
        train_loss = train_epoch(objective, batches, optimizer)
        seconds = time.perf_counter() - started
        train_loss = _mean_across_workers(train_loss, n_train)
        val_loss = _mean_across_workers(evaluate(objective, val_loader), n_val)
        improved = val_loss < state["best"] - 1e-4
        state["best"], state["stale"] = (
            (val_loss, 0) if improved else (state["best"], state["stale"] + 1)
        )
        state["epoch"] = epoch + 1
        metrics = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "epoch_seconds": seconds,
            "sequences_per_second": n_train * world_size / seconds,
        }
        state["history"].append(metrics)
        if tracker is not None:
            for key in ("train_loss", "val_loss"):
                tracker.log_metric(config["run_id"], f"pretrain.{key}", metrics[key], step=epoch)
        rng = _gather(capture_rng())  # every rank's, so each resumes its own streams
        with tempfile.TemporaryDirectory() as directory:
            if rank == 0:
                torch.save(
                    {
                        "objective": _unwrap(objective).state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "rng": rng,
                        **state,
                    },
                    Path(directory) / STATE_FILE,
                )
            ray.train.report(  # Ray: keeps the best checkpoints, resumes from the last
                metrics,
                checkpoint=ray.train.Checkpoint.from_directory(directory) if rank == 0 else None,
            )


def _gather(state: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """One entry per rank, in rank order (just this process's outside DDP)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [state]
    states: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(states, state)
    return states


def _inject_fault(
    loader: Iterable[SequenceBatch], fault: dict[str, Any] | None, epoch: int, rank: int
) -> Iterable[SequenceBatch]:
    """Test hook: the worker of ``fault["rank"]`` dies (SIGKILL-like) at ``fault["step"]``.

    Only once: ``fault["marker"]`` records the death, so the restarted group trains on.
    It waits ``fault["delay_s"]`` first: Ray's controller collects reports every 2 s
    (``RAY_TRAIN_HEALTH_CHECK_INTERVAL_S``), and a worker that dies sooner after a report
    takes that report's checkpoint with it (measured: the run restarted from epoch 0).
    """
    if not fault or fault["epoch"] != epoch or fault["rank"] != rank:
        return loader
    if Path(fault["marker"]).exists():
        return loader

    def dying() -> Iterator[SequenceBatch]:
        for step, batch in enumerate(loader):
            if step == fault["step"]:
                time.sleep(fault.get("delay_s", 0.0))
                Path(fault["marker"]).write_text(f"epoch {epoch} step {step} rank {rank}\n")
                os._exit(1)  # no cleanup, no exception: as if the process were killed
            yield batch

    return dying()


def _unwrap(module: torch.nn.Module) -> torch.nn.Module:
    return getattr(module, "module", module)


def run_trainer(config: dict[str, Any], params: PretrainParams, name: str) -> ray.train.Result:
    """A reused ``name`` resumes that training run from its storage; a new name starts afresh."""
    use_gpu = torch.cuda.is_available() if params.use_gpu is None else params.use_gpu
    trainer = ray.train.torch.TorchTrainer(
        train_loop_per_worker,
        train_loop_config=config,
        scaling_config=ray.train.ScalingConfig(num_workers=params.num_workers, use_gpu=use_gpu),
        run_config=ray.train.RunConfig(
            name=name,
            storage_path=str(get_settings().ray_storage),
            checkpoint_config=ray.train.CheckpointConfig(
                num_to_keep=params.keep_checkpoints,
                checkpoint_score_attribute="val_loss",
                checkpoint_score_order="min",
            ),
            failure_config=ray.train.FailureConfig(max_failures=params.max_failures),
        ),
    )
    return trainer.fit()


def load_encoder(checkpoint_dir: str, encoder_config: dict[str, Any]) -> TimeAttentionBiLSTM:
    """The encoder of a checkpoint, loaded without unpickling anything but tensors."""
    saved = torch.load(Path(checkpoint_dir) / STATE_FILE, weights_only=True)
    encoder = TimeAttentionBiLSTM(**encoder_config)
    prefix = "encoder."
    encoder.load_state_dict(
        {k[len(prefix) :]: v for k, v in saved["objective"].items() if k.startswith(prefix)}
    )
    return encoder.eval()


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
        name=name, checkpoint=best.path, history=latest["history"], starts=latest["starts"]
    )


# The name digests the config and parameters that matter (tasks.pretrain_lineage).
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
    code = training_code_digest(sys.modules[__name__])
    name = training_name(output_root, vocabulary_size, max_len, params.model_dump(), code)
    stored = (get_settings().ray_storage / name / CHECKPOINT_SNAPSHOT).exists()
    state = _fit.with_options(refresh_cache=not stored)(config, params, name, return_state=True)
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
