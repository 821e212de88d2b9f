"""Sequence-autoencoder reconstruction loss, FinDeepBehaviorCluster's unsupervised objective."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ops.sequence_batch import PAD, SequenceBatch


class SequenceReconstructionLoss(nn.Module):
    """Decode a session's pages and log-dwell back from its embedding.

    Min et al. (eBay, 2021, arXiv 2101.04285) train the time-attention Bi-LSTM as the
    encoder of a sequence autoencoder. The GRU decoder here is *unconditioned*
    (Srivastava et al. 2015, arXiv 1502.04681): every step sees only the embedding and
    its position, never the previous true event, so it cannot copy the timing of step
    ``t - 1`` into step ``t`` and everything it reconstructs must pass through the
    embedding. Loss = CE(pages) + ``dwell_weight`` * MSE(log1p dwell), on real events only.

    Args:
        vocab_size: number of token ids including PAD and OOV.
        embedding_dim: size of the encoder output.
        hidden_size: decoder GRU size.
        max_len: longest sequence the decoder positions cover (longer ones are cut).
        dwell_weight: weight of the timing term; timing is the bot signal, so keep it ~1.

    >>> import numpy as np
    >>> from ops.encoder import TimeAttentionBiLSTM
    >>> from ops.sequence_batch import collate_sequences
    >>> enc = TimeAttentionBiLSTM(vocab_size=50, embedding_dim=32)
    >>> loss_fn = SequenceReconstructionLoss(vocab_size=50, embedding_dim=32)
    >>> batch = collate_sequences([np.array([2, 3, 4])], [np.array([0.0, 0.6, 0.6])], 16)
    >>> loss = loss_fn(enc(batch), batch)
    >>> loss.shape
    torch.Size([])
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        hidden_size: int = 64,
        max_len: int = 256,
        dwell_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.dwell_weight = dwell_weight
        self.max_len = max_len
        self.position = nn.Embedding(max_len, embedding_dim)
        self.init_hidden = nn.Linear(embedding_dim, hidden_size)
        self.gru = nn.GRU(2 * embedding_dim, hidden_size, batch_first=True)
        self.token_head = nn.Linear(hidden_size, vocab_size)
        self.dwell_head = nn.Linear(hidden_size, 1)

    def forward(self, embedding: torch.Tensor, batch: SequenceBatch) -> torch.Tensor:
        """Scalar reconstruction loss of ``batch`` from its ``[B, D]`` ``embedding``."""
        t = min(batch.tokens.shape[1], self.max_len)
        tokens, log_dwell, mask = batch.tokens[:, :t], batch.log_dwell[:, :t], batch.mask[:, :t]
        b = embedding.shape[0]
        pos = self.position(torch.arange(t, device=embedding.device)).expand(b, t, -1)
        inputs = torch.cat([embedding.unsqueeze(1).expand(b, t, -1), pos], dim=-1)
        h0 = torch.tanh(self.init_hidden(embedding)).unsqueeze(0).contiguous()
        out, _ = self.gru(inputs, h0)
        logits = self.token_head(out)
        n_real = mask.sum().clamp(min=1)
        ce = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            tokens.masked_fill(~mask, PAD).reshape(-1),
            ignore_index=PAD,
            reduction="sum",
        )
        sq = (self.dwell_head(out).squeeze(-1) - log_dwell).pow(2) * mask
        return (ce + self.dwell_weight * sq.sum()) / n_real
