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

from ops.sequence._encoder import TimeAttentionBiLSTM
from ops.sequence._equal_length import embed_equal_length
from ops.sequence._sequence_batch import SequenceBatch, collate_sequences, length_buckets


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


@torch.inference_mode()
def embed(
    encoder: nn.Module,
    tokens: Sequence[np.ndarray],
    dwell: Sequence[np.ndarray],
    max_len: int = 64,
    batch_size: int = 1024,
) -> np.ndarray:
    """Embed sessions with ``encoder`` in eval mode: ``float32 [N, embedding_dim]``, input order.

    Sessions go through in batches of equal kept length (:func:`length_buckets`): no step is
    spent on padding. A :class:`TimeAttentionBiLSTM` takes :func:`embed_equal_length`'s path
    (the same function in fewer operators, batches in parallel on CPU); other encoders get each
    batch collated. Each session's embedding is the one a padded batch gives, up to float
    rounding; which batch a session lands in depends only on the lengths, so a repeated call
    returns the same array.

    Examples
    --------
    >>> from ops.sequence import TimeAttentionBiLSTM
    >>> enc = TimeAttentionBiLSTM(vocab_size=50)
    >>> embed(enc, [np.array([2, 3])], [np.array([0.0, 0.6])]).shape
    (1, 32)
    """
    was_training = encoder.training
    encoder.eval()
    try:
        if isinstance(encoder, TimeAttentionBiLSTM):
            return embed_equal_length(encoder, tokens, dwell, max_len, batch_size)
        return _embed_collated(encoder, tokens, dwell, max_len, batch_size)
    finally:
        encoder.train(was_training)


def _embed_collated(
    encoder: nn.Module,
    tokens: Sequence[np.ndarray],
    dwell: Sequence[np.ndarray],
    max_len: int,
    batch_size: int,
) -> np.ndarray:
    """Any encoder's embeddings, one collated equal-length batch after the other."""
    device = _device_of(encoder)
    lengths = np.minimum(np.fromiter(map(len, tokens), np.int64, len(tokens)), max_len)
    out: np.ndarray | None = None
    for rows in length_buckets(lengths, batch_size):
        batch = collate_sequences(
            [tokens[i] for i in rows], [dwell[i] for i in rows], max(int(lengths[rows[0]]), 1)
        )
        z = encoder(batch.to(device)).float().cpu().numpy()
        if out is None:
            out = np.empty((len(tokens), z.shape[1]), dtype=np.float32)
        out[rows] = z
    if out is None:
        return np.zeros((0, _output_dim(encoder)), dtype=np.float32)
    return out


def _device_of(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def _output_dim(encoder: nn.Module) -> int:
    inner = getattr(encoder, "module", encoder)  # DDP keeps the model as .module
    return int(getattr(inner, "embedding_dim", 0))
