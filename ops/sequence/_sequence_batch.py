"""Padded tensor batches of click-stream sessions (page tokens + dwell times).

Token ids follow the ingest contract: ``0`` is padding, ``1`` is out-of-vocabulary and real
pages are ``>= 2``. Dwell is seconds since the previous event (the first event has 0).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset


@dataclass
class SequenceBatch:
    """Right-padded batch of sessions.

    Attributes
    ----------
    tokens : torch.Tensor
        ``LongTensor [B, T]`` page ids, ``0`` where padded.
    log_dwell : torch.Tensor
        ``FloatTensor [B, T]`` ``log1p(dwell seconds)``; log-scale because dwell spans
        100 ms bot clicks to minutes of human reading.
    mask : torch.Tensor
        ``BoolTensor [B, T]``, ``True`` on real events.
    """

    tokens: torch.Tensor
    log_dwell: torch.Tensor
    mask: torch.Tensor

    @property
    def lengths(self) -> torch.Tensor:
        """Number of real events per row, ``LongTensor [B]``."""
        return self.mask.sum(dim=1)

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> SequenceBatch:
        """Move every tensor to ``device``."""
        return SequenceBatch(
            tokens=self.tokens.to(device, non_blocking=non_blocking),
            log_dwell=self.log_dwell.to(device, non_blocking=non_blocking),
            mask=self.mask.to(device, non_blocking=non_blocking),
        )


def collate_sequences(
    tokens: Sequence[np.ndarray], dwell: Sequence[np.ndarray], max_len: int
) -> SequenceBatch:
    """Pad variable-length sessions into a :class:`SequenceBatch`.

    Sessions longer than ``max_len`` keep their *last* ``max_len`` events: the run-up to
    checkout is what distinguishes a scripted purchase from a browsing one.

    Examples
    --------
    >>> import numpy as np
    >>> b = collate_sequences([np.array([5, 6, 7]), np.array([9])],
    ...                       [np.array([0.0, 1.0, 2.0]), np.array([0.0])], max_len=2)
    >>> b.tokens.tolist(), b.mask.tolist()
    ([[6, 7], [9, 0]], [[True, True], [True, False]])
    """
    if len(tokens) != len(dwell):
        raise ValueError(f"{len(tokens)} token sequences but {len(dwell)} dwell sequences")
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    n = len(tokens)
    lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=n)
    dwell_lengths = np.fromiter(map(len, dwell), dtype=np.int64, count=n)
    for i in np.flatnonzero(lengths != dwell_lengths)[:1]:
        raise ValueError(f"sequence {i}: {lengths[i]} tokens but {dwell_lengths[i]} dwell values")
    kept = np.minimum(lengths, max_len)
    tok = np.zeros((n, max_len), dtype=np.int64)
    ldw = np.zeros((n, max_len), dtype=np.float32)
    if kept.any():
        # One scatter of every kept event instead of a Python loop over sessions: at scoring
        # batch sizes the loop cost as much as the encoder's attention layers.
        ends = np.cumsum(lengths)
        from_end = np.repeat(ends, lengths) - np.arange(ends[-1]) - 1  # 0 on a session's last
        keep = from_end < max_len
        rows = np.repeat(np.arange(n), lengths)[keep]
        cols = np.repeat(kept, lengths)[keep] - 1 - from_end[keep]
        tok[rows, cols] = np.concatenate(tokens)[keep]
        d = np.concatenate(dwell)[keep].astype(np.float32, copy=False)
        # Negative or NaN dwell (clock skew, missing ts) would poison log1p; treat as instant.
        ldw[rows, cols] = np.log1p(np.clip(np.nan_to_num(d, nan=0.0), 0.0, None))
    return SequenceBatch(
        tokens=torch.from_numpy(tok),
        log_dwell=torch.from_numpy(ldw),
        mask=torch.from_numpy(np.arange(max_len) < kept[:, None]),
    )


def length_buckets(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Row indices grouped by equal length, each group cut into batches of ``batch_size``.

    Within a batch every session has the same length, so nothing is padded and the encoder's
    backward pass reverses by a flip. Shortest first, rows in their input order within a length:
    the batching depends only on ``lengths``.

    >>> [b.tolist() for b in length_buckets(np.array([3, 1, 3, 3, 1]), batch_size=2)]
    [[1, 4], [0, 2], [3]]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not len(lengths):
        return []
    order = np.argsort(lengths, kind="stable")
    bounds = np.flatnonzero(np.diff(np.asarray(lengths)[order])) + 1
    return [
        group[start : start + batch_size]
        for group in np.split(order, bounds)
        for start in range(0, len(group), batch_size)
    ]


class SequenceDataset(Dataset[tuple[np.ndarray, np.ndarray]]):
    """Map-style dataset of variable-length sessions; batch it with :class:`SequenceCollator`.

    Examples
    --------
    >>> import numpy as np
    >>> from torch.utils.data import DataLoader
    >>> ds = SequenceDataset([np.array([2, 3]), np.array([4])], [np.zeros(2), np.zeros(1)])
    >>> batch = next(iter(DataLoader(ds, batch_size=2, collate_fn=SequenceCollator(8))))
    >>> tuple(batch.tokens.shape)
    (2, 2)
    """

    def __init__(self, tokens: Sequence[np.ndarray], dwell: Sequence[np.ndarray]) -> None:
        if len(tokens) != len(dwell):
            raise ValueError(f"{len(tokens)} token sequences but {len(dwell)} dwell sequences")
        self.tokens = tokens
        self.dwell = dwell

    @classmethod
    def from_offsets(
        cls, tokens: np.ndarray, dwell: np.ndarray, offsets: np.ndarray
    ) -> SequenceDataset:
        """Build from flat arrays + ``offsets`` (length ``N + 1``), as Arrow list columns hold them.

        Slices are views, so no per-sequence copy is made.
        """
        bounds = list(itertools.pairwise(np.asarray(offsets).tolist()))
        return cls([tokens[a:b] for a, b in bounds], [dwell[a:b] for a, b in bounds])

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.tokens[index], self.dwell[index]


class SequenceCollator:
    """Picklable ``collate_fn`` (DataLoader workers, Ray's ``prepare_data_loader``)."""

    def __init__(self, max_len: int) -> None:
        self.max_len = max_len

    def __call__(self, items: Sequence[tuple[np.ndarray, np.ndarray]]) -> SequenceBatch:
        """Collate ``(tokens, dwell)`` pairs, padding to the longest kept sequence."""
        longest = max((min(len(t), self.max_len) for t, _ in items), default=1)
        return collate_sequences(
            [t for t, _ in items], [d for _, d in items], max_len=max(longest, 1)
        )
