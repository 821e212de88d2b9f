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
    tok = np.zeros((n, max_len), dtype=np.int64)
    ldw = np.zeros((n, max_len), dtype=np.float32)
    msk = np.zeros((n, max_len), dtype=bool)
    for i, (t, d) in enumerate(zip(tokens, dwell, strict=True)):
        t = np.asarray(t)[-max_len:]
        d = np.asarray(d, dtype=np.float32)[-max_len:]
        if t.shape != d.shape:
            raise ValueError(f"sequence {i}: {t.shape[0]} tokens but {d.shape[0]} dwell values")
        k = t.shape[0]
        tok[i, :k] = t
        # Negative or NaN dwell (clock skew, missing ts) would poison log1p; treat as instant.
        ldw[i, :k] = np.log1p(np.clip(np.nan_to_num(d, nan=0.0), 0.0, None))
        msk[i, :k] = True
    return SequenceBatch(
        tokens=torch.from_numpy(tok),
        log_dwell=torch.from_numpy(ldw),
        mask=torch.from_numpy(msk),
    )


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
