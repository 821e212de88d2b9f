"""What each Ray Train worker runs: its data shard, the DDP loop, checkpoints with RNG state.

The loop is the plain PyTorch loop of ``ops.sequence._training``; the Ray-specific lines are marked
``# Ray:`` so the rest reads (and tests) as ordinary PyTorch. This module's text is part of
the training's identity (``tasks.training_identity``): editing it starts new training runs.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from torch.utils.data import DataLoader, Subset
from torch.utils.data.distributed import DistributedSampler

from ops.sequence import (
    SequenceCollator,
    SequenceDataset,
    TimeAttentionBiLSTM,
    build_objective,
    capture_rng,
    evaluate,
    restore_rng,
    set_seed,
    train_epoch,
)
from tasks.io import read_sequences, sequence_arrays
from tasks.pretrain_progress import epoch_reporter

STATE_FILE = "state.pt"


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
    """The worker's shards of the seeded train/validation split, at ``batch_size / world``.

    One global permutation (seeded, reshuffled each epoch by ``set_epoch``) is dealt
    round-robin to the workers, so step ``i`` of a W-worker run trains on exactly the
    sequences of step ``i`` of a 1-worker run: the runs differ only in float summation.
    Ray's own sampler would ignore the seed and pad the shards with repeated sequences.
    """
    table = read_sequences(config["output_root"])
    train_idx, val_idx = _split(
        table.num_rows, config["val_fraction"], config["max_train_sequences"], config["seed"]
    )
    # Only the sample becomes arrays (the split is the costly part at 1M sessions); the
    # dataset's positions are the sample's, in the table's order.
    rows = np.union1d(train_idx, val_idx)
    _, tokens, dwell = sequence_arrays(table.take(rows))
    dataset = SequenceDataset(tokens, dwell)
    collate = SequenceCollator(config["max_len"])
    per_worker = max(2, config["batch_size"] // world_size)
    train = Subset(dataset, np.searchsorted(rows, train_idx))
    val = Subset(dataset, np.searchsorted(rows, val_idx))
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

    if config.get("run_id"):  # which node each rank trained on (last placement after restarts)
        node = ray.get_runtime_context().get_node_id()
        MlflowClient(config["tracking_uri"]).set_tag(
            config["run_id"], f"shoal.pretrain.node.{rank}", node
        )
    tracker = MlflowClient(config["tracking_uri"]) if rank == 0 and config.get("run_id") else None
    report_epoch = epoch_reporter(config, rank)
    # A run restored after it stopped early must not train on.
    while state["epoch"] < config["epochs"] and state["stale"] < config["patience"]:
        epoch = state["epoch"]
        train_sampler.set_epoch(epoch)
        started = time.perf_counter()
        train_loss = train_epoch(objective, train_loader, optimizer)
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
            now = int(time.time() * 1000)
            losses = [
                Metric(f"pretrain.{key}", metrics[key], now, epoch)
                for key in ("train_loss", "val_loss")
            ]
            tracker.log_batch(config["run_id"], metrics=losses)
        report_epoch(metrics)
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


def _unwrap(module: torch.nn.Module) -> torch.nn.Module:
    return getattr(module, "module", module)


def load_encoder(checkpoint_dir: str, encoder_config: dict[str, Any]) -> TimeAttentionBiLSTM:
    """The encoder of a checkpoint (a path or a URI), loaded unpickling nothing but tensors."""
    with fsspec.open(f"{checkpoint_dir.rstrip('/')}/{STATE_FILE}", "rb") as file:
        saved = torch.load(file, weights_only=True)
    encoder = TimeAttentionBiLSTM(**encoder_config)
    prefix = "encoder."
    encoder.load_state_dict(
        {k[len(prefix) :]: v for k, v in saved["objective"].items() if k.startswith(prefix)}
    )
    return encoder.eval()
