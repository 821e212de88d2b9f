"""The encoder's serving form: one float array in, embeddings out, for MLflow's pyfunc flavour.

MLflow's PyTorch flavour feeds a model a single tensor, while the encoder takes a
``SequenceBatch``; packing token ids and dwell seconds as two channels keeps the logged model
self-contained (no Shoal code needed to call it) with an honest signature.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ops.constants import PAD
from ops.sequence._sequence_batch import SequenceBatch, collate_sequences


class PackedSequenceEncoder(nn.Module):
    """Wraps an encoder to take ``float32 [B, 2, T]``: channel 0 token ids, channel 1 dwell (s).

    Examples
    --------
    >>> from ops.sequence import TimeAttentionBiLSTM
    >>> serving = PackedSequenceEncoder(TimeAttentionBiLSTM(vocab_size=10))
    >>> packed = pack_sequences([np.array([2, 3])], [np.array([0.0, 0.6])], max_len=4)
    >>> tuple(serving(torch.from_numpy(packed)).shape)
    (1, 32)
    """

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, packed: torch.Tensor) -> torch.Tensor:
        tokens = packed[:, 0].round().long()
        log_dwell = torch.log1p(packed[:, 1].clamp(min=0))
        return self.encoder(SequenceBatch(tokens=tokens, log_dwell=log_dwell, mask=tokens != PAD))


def pack_sequences(
    tokens: Sequence[np.ndarray], dwell: Sequence[np.ndarray], max_len: int
) -> np.ndarray:
    batch = collate_sequences(tokens, dwell, max_len)
    return np.stack(
        [batch.tokens.numpy().astype(np.float32), np.expm1(batch.log_dwell.numpy())], axis=1
    )
