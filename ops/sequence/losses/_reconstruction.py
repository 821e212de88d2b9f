"""Sequence-autoencoder reconstruction loss, FinDeepBehaviorCluster's unsupervised objective."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ops.constants import PAD
from ops.sequence._sequence_batch import SequenceBatch


class SequenceReconstructionLoss(nn.Module):
    """Decode a session's pages and log-dwell back from its embedding.

    Min et al. (eBay, 2021, arXiv 2101.04285) train the time-attention Bi-LSTM as the
    encoder of a sequence autoencoder. The GRU decoder here is *unconditioned*
    (Srivastava et al. 2015, arXiv 1502.04681): every step sees only the embedding and
    its position, never the previous true event, so it cannot copy the timing of step
    ``t - 1`` into step ``t`` and everything it reconstructs must pass through the
    embedding. Loss = CE(pages) + ``dwell_weight`` * dwell term, on real events only.

    The dwell term defaults to a Gaussian negative log-likelihood with a predicted
    per-step variance rather than the MSE: when a bot clicks every 600 ms and humans take
    600 ms on median, both have the same expected dwell and the MSE gains nothing from
    knowing which is which, while the likelihood rewards knowing that the bot's spread is
    tiny. That regularity is the signal Shoal is after (measured in
    ``tests/ops/sequence/test_training.py``). ``dwell_loss="mse"`` gives the plain MSE.

    Parameters
    ----------
    vocab_size : int
        Number of token ids including PAD and OOV.
    embedding_dim : int
        Size of the encoder output.
    hidden_size : int
        Decoder GRU size.
    max_len : int
        Longest sequence the decoder positions cover (longer ones are cut).
    dwell_weight : float
        Weight of the timing term; timing is the bot signal, so keep it ~1.
    dwell_loss : {"gaussian_nll", "mse"}
        ``"gaussian_nll"`` (predicted mean and spread) or ``"mse"``.
    min_dwell_std : float
        Floor of the predicted spread in log1p-seconds; ~clock jitter, so a perfectly
        regular bot cannot drive the likelihood to infinity.

    Examples
    --------
    >>> import numpy as np
    >>> from ops.sequence import TimeAttentionBiLSTM
    >>> from ops.sequence import collate_sequences
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
        dwell_loss: Literal["gaussian_nll", "mse"] = "gaussian_nll",
        min_dwell_std: float = 0.02,
    ) -> None:
        super().__init__()
        if dwell_loss not in ("gaussian_nll", "mse"):
            raise ValueError(f"dwell_loss must be 'gaussian_nll' or 'mse', got {dwell_loss!r}")
        self.dwell_weight = dwell_weight
        self.dwell_loss = dwell_loss
        self.min_log_var = 2.0 * math.log(min_dwell_std)
        self.max_len = max_len
        # Pooled LSTM states vary little between sessions at init; normalising the code
        # lets the decoder notice it before it settles on the marginal distribution
        # and ignores the embedding (measured: without it the decoder never used it).
        self.code_norm = nn.LayerNorm(embedding_dim)
        self.position = nn.Embedding(max_len, embedding_dim)
        self.init_hidden = nn.Linear(embedding_dim, hidden_size)
        self.gru = nn.GRU(2 * embedding_dim, hidden_size, batch_first=True)
        self.token_head = nn.Linear(hidden_size, vocab_size)
        self.dwell_head = nn.Linear(hidden_size, 2)

    def forward(self, embedding: torch.Tensor, batch: SequenceBatch) -> torch.Tensor:
        """Scalar reconstruction loss of ``batch`` from its ``[B, D]`` ``embedding``."""
        t = min(batch.tokens.shape[1], self.max_len)
        tokens, log_dwell, mask = batch.tokens[:, :t], batch.log_dwell[:, :t], batch.mask[:, :t]
        b = embedding.shape[0]
        embedding = self.code_norm(embedding)
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
        mean, log_var = self.dwell_head(out).unbind(-1)
        if self.dwell_loss == "mse":
            per_step = (mean - log_dwell).pow(2)
        else:
            # Softplus floor keeps the spread above min_dwell_std with a smooth gradient.
            log_var = self.min_log_var + F.softplus(log_var - self.min_log_var)
            per_step = 0.5 * (log_var + (log_dwell - mean).pow(2) * torch.exp(-log_var))
        dwell_term = (per_step * mask).sum()
        return (ce + self.dwell_weight * dwell_term) / n_real
