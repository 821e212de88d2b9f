"""Plain PyTorch loop pieces the Ray Train worker calls; nothing here knows about Ray.

The objective may arrive wrapped in ``DistributedDataParallel``: only ``forward``,
``parameters`` and ``train``/``eval`` are called on it. Losses returned are this process's
means; averaging across ranks is the caller's business.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from ops.sequence._sequence_batch import SequenceBatch, SequenceCollator, SequenceDataset


def set_seed(seed: int) -> None:
    """Seed Python, numpy and torch (all devices) so that a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_epoch(
    objective: nn.Module,
    loader: Iterable[SequenceBatch],
    optimizer: torch.optim.Optimizer,
    max_grad_norm: float | None = 1.0,
) -> float:
    """One pass over ``loader``; returns the sequence-weighted mean loss.

    Gradients are clipped because LSTMs on long bot sessions occasionally spike.
    """
    objective.train()
    device = _device_of(objective)
    total, count = 0.0, 0
    for batch in loader:
        batch = batch.to(device, non_blocking=True)
        loss = objective(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if max_grad_norm is not None:
            nn.utils.clip_grad_norm_(objective.parameters(), max_grad_norm)
        optimizer.step()
        total += float(loss.detach()) * len(batch)
        count += len(batch)
    return total / max(count, 1)


@torch.no_grad()
def evaluate(objective: nn.Module, loader: Iterable[SequenceBatch]) -> float:
    """Sequence-weighted mean loss over ``loader`` in eval mode (no dropout, fixed views)."""
    was_training = objective.training
    objective.eval()
    device = _device_of(objective)
    total, count = 0.0, 0
    try:
        for batch in loader:
            batch = batch.to(device, non_blocking=True)
            total += float(objective(batch)) * len(batch)
            count += len(batch)
    finally:
        objective.train(was_training)
    return total / max(count, 1)


@torch.no_grad()
def embed(
    encoder: nn.Module,
    tokens: Sequence[np.ndarray],
    dwell: Sequence[np.ndarray],
    max_len: int = 64,
    batch_size: int = 1024,
) -> np.ndarray:
    """Embed sessions with ``encoder`` in eval mode: ``float32 [N, embedding_dim]``.

    Examples
    --------
    >>> from ops.sequence import TimeAttentionBiLSTM
    >>> enc = TimeAttentionBiLSTM(vocab_size=50)
    >>> embed(enc, [np.array([2, 3])], [np.array([0.0, 0.6])]).shape
    (1, 32)
    """
    was_training = encoder.training
    encoder.eval()
    device = _device_of(encoder)
    dataset = SequenceDataset(tokens, dwell)
    collate = SequenceCollator(max_len)
    parts: list[np.ndarray] = []
    try:
        for start in range(0, len(dataset), batch_size):
            items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
            z = encoder(collate(items).to(device))
            parts.append(z.float().cpu().numpy())
    finally:
        encoder.train(was_training)
    if not parts:
        return np.zeros((0, _output_dim(encoder)), dtype=np.float32)
    return np.concatenate(parts).astype(np.float32, copy=False)


def _device_of(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def _output_dim(encoder: nn.Module) -> int:
    inner = getattr(encoder, "module", encoder)  # DDP keeps the model as .module
    return int(getattr(inner, "embedding_dim", 0))
