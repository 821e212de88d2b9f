"""Session augmentations that make the two views of SimCLR-style contrastive training.

Each keeps what should define a behaviour (page path *and* timing regime) and perturbs
what should not (where the session was cut, an odd page, a few percent of clock noise).
All work on padded tensors on any device and take an optional ``torch.Generator``.
"""

from __future__ import annotations

import torch

from ops.constants import OOV, PAD
from ops.sequence._sequence_batch import SequenceBatch


def random_crop(
    batch: SequenceBatch, min_ratio: float = 0.6, generator: torch.Generator | None = None
) -> SequenceBatch:
    """Keep a random contiguous window of each session, at least ``min_ratio`` of it.

    Examples
    --------
    >>> import numpy as np
    >>> from ops.sequence import collate_sequences
    >>> b = collate_sequences([np.arange(2, 12)], [np.ones(10)], max_len=10)
    >>> int(random_crop(b, min_ratio=0.5).lengths) >= 5
    True
    """
    if not 0.0 < min_ratio <= 1.0:
        raise ValueError(f"min_ratio must be in (0, 1], got {min_ratio}")
    lengths = batch.lengths
    device = lengths.device
    u = torch.rand(lengths.shape, generator=generator, device=device)
    new_len = torch.ceil(lengths * (min_ratio + (1.0 - min_ratio) * u)).long()
    new_len = torch.minimum(new_len.clamp(min=1), lengths.clamp(min=1))
    v = torch.rand(lengths.shape, generator=generator, device=device)
    start = torch.floor(v * (lengths - new_len + 1)).long().clamp(min=0)
    positions = torch.arange(batch.tokens.shape[1], device=device).unsqueeze(0)
    source = (start.unsqueeze(1) + positions).clamp(max=batch.tokens.shape[1] - 1)
    mask = (positions < new_len.unsqueeze(1)) & batch.mask.any(dim=1, keepdim=True)
    tokens = torch.gather(batch.tokens, 1, source).masked_fill(~mask, PAD)
    log_dwell = torch.gather(batch.log_dwell, 1, source).masked_fill(~mask, 0.0)
    return SequenceBatch(tokens=tokens, log_dwell=log_dwell, mask=mask)


def mask_tokens(
    batch: SequenceBatch, prob: float = 0.15, generator: torch.Generator | None = None
) -> SequenceBatch:
    """Replace each real page token by OOV with probability ``prob``; dwell is untouched.

    Examples
    --------
    >>> import numpy as np
    >>> from ops.sequence import collate_sequences
    >>> b = collate_sequences([np.arange(2, 12)], [np.ones(10)], max_len=10)
    >>> mask_tokens(b, prob=1.0).tokens.unique().tolist()
    [1]
    """
    hit = torch.rand(batch.tokens.shape, generator=generator, device=batch.tokens.device) < prob
    tokens = batch.tokens.masked_fill(hit & batch.mask, OOV)
    return SequenceBatch(tokens=tokens, log_dwell=batch.log_dwell, mask=batch.mask)


def jitter_time(
    batch: SequenceBatch, sigma: float = 0.05, generator: torch.Generator | None = None
) -> SequenceBatch:
    """Multiply each dwell by ``exp(N(0, sigma))``, i.e. a few percent of clock noise.

    Multiplicative and small on purpose: additive or large noise would make a 600 ms bot
    look like a human and teach the encoder to ignore the very timing signal we want.

    Examples
    --------
    >>> import numpy as np
    >>> from ops.sequence import collate_sequences
    >>> b = collate_sequences([np.arange(2, 6)], [np.full(4, 0.6)], max_len=4)
    >>> dwell = torch.expm1(jitter_time(b, sigma=0.05).log_dwell)
    >>> bool(((dwell - 0.6).abs() < 0.2).all())
    True
    """
    noise = torch.randn(batch.log_dwell.shape, generator=generator, device=batch.log_dwell.device)
    dwell = torch.expm1(batch.log_dwell) * torch.exp(sigma * noise)
    log_dwell = torch.log1p(dwell).masked_fill(~batch.mask, 0.0)
    return SequenceBatch(tokens=batch.tokens, log_dwell=log_dwell, mask=batch.mask)


class SessionAugment:
    """Crop, then token mask, then time jitter: one random view of a batch."""

    def __init__(
        self, crop_min_ratio: float = 0.6, mask_prob: float = 0.15, jitter_sigma: float = 0.05
    ) -> None:
        self.crop_min_ratio = crop_min_ratio
        self.mask_prob = mask_prob
        self.jitter_sigma = jitter_sigma

    def __call__(
        self, batch: SequenceBatch, generator: torch.Generator | None = None
    ) -> SequenceBatch:
        """Return an augmented copy of ``batch``."""
        batch = random_crop(batch, self.crop_min_ratio, generator)
        batch = mask_tokens(batch, self.mask_prob, generator)
        return jitter_time(batch, self.jitter_sigma, generator)
