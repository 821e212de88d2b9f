"""Time-attention Bi-LSTM session encoder (FinDeepBehaviorCluster's sequence model)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ops.constants import PAD
from ops.sequence._sequence_batch import SequenceBatch


class TimeEncoding(nn.Module):
    """Time2Vec features of the dwell time (Kazemi et al. 2019, arXiv 1907.05321).

    Works on log *seconds*, not the batch's log1p: log1p squeezes everything under a
    second into [0, 0.7], where a bot's 600 ms and a human's 300-1200 ms are nearly one
    value; in log seconds they spread ~5x wider, so the LSTM sees regularity at init.
    One linear channel keeps the scale (fast vs slow); learned-frequency sines give the
    LSTM sharp, bounded detectors of particular gap lengths.
    """

    def __init__(self, time_dim: int, min_seconds: float = 1e-2) -> None:
        super().__init__()
        if time_dim < 2:
            raise ValueError(f"time_dim must be >= 2, got {time_dim}")
        self.min_seconds = min_seconds
        self.linear = nn.Linear(1, 1)
        self.periodic = nn.Linear(1, time_dim - 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Log-spaced frequencies, 0.25 to 16 rad per log-second, random phases.

        The mean of ``sin(w x + b)`` over a session shrinks by ``exp(-w^2 s^2 / 2)`` when
        ``x`` spreads with std ``s``, so only ``w s >~ 1`` tells a regular bot from a human
        (``s ~ 0.6``). Default ``U(-1, 1)`` init leaves that to chance: with ``time_dim=8``
        contrastive training never found a 600 ms rhythm in 6 epochs (kNN purity 0.51);
        with this init it is visible before training (0.97) and training keeps it.
        """
        n = self.periodic.out_features
        with torch.no_grad():
            self.periodic.weight.copy_(torch.logspace(-2, 4, n, base=2.0).unsqueeze(1))
            self.periodic.bias.uniform_(0.0, 2 * math.pi)

    def forward(self, log_dwell: torch.Tensor) -> torch.Tensor:
        """``[B, T]`` log1p-dwell to ``[B, T, time_dim]``."""
        return self.encode(log_seconds(log_dwell, self.min_seconds))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Time2Vec of any ``[B, T]`` real-valued time feature (here: log seconds)."""
        x = x.unsqueeze(-1)
        return torch.cat([self.linear(x), torch.sin(self.periodic(x))], dim=-1)


def log_seconds(log_dwell: torch.Tensor, min_seconds: float = 1e-2) -> torch.Tensor:
    """The batch's ``log1p`` dwell as log seconds (see :class:`TimeEncoding` for why)."""
    return torch.log(torch.expm1(log_dwell).clamp(min=min_seconds))


class PageDwellNorm(nn.Module):
    """How unusual each dwell is *for the page it was spent on*: a per-page standard score.

    ``dwell[t]`` is the time between events ``t - 1`` and ``t``, i.e. time spent on page
    ``t - 1``. People read a product's reviews for ~40 s and click "add to cart" in ~3 s; a
    bot that sleeps human-like delays whatever the page has the same dwell *distribution*
    (median, spread, minimum) as people, so it is invisible to the raw dwell and to any
    per-session dwell statistic, and shows only in the pairing of page and dwell. An LSTM
    given page and dwell as separate inputs must discover that pairing by itself (it did
    not in 3 epochs: ``benchmarks/README.md``); this layer hands it over, as
    ``(log seconds - mean[page]) / std[page]``.

    The per-page mean and variance are running statistics of the training batches, as in
    batch normalisation (Ioffe & Szegedy 2015, arXiv 1502.03167), kept per page rather
    than per channel: no extra loss, fixed at inference, saved with the weights. Steps
    without a previous page (the first event) and padding get 0.
    """

    def __init__(self, vocab_size: int, momentum: float = 0.1, eps: float = 1e-2) -> None:
        super().__init__()
        self.momentum = momentum
        self.eps = eps
        self.register_buffer("running_mean", torch.zeros(vocab_size))
        self.register_buffer("running_var", torch.ones(vocab_size))

    def forward(self, tokens: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``[B, T]`` page ids, log-second dwell and mask to ``[B, T]`` per-page scores."""
        page = torch.roll(tokens, 1, dims=1)  # the page each dwell was spent on
        has_gap = mask & torch.roll(mask, 1, dims=1)
        has_gap[:, 0] = False
        if self.training:
            self._update(page[has_gap], x[has_gap].detach())
        z = (x - self.running_mean[page]) * torch.rsqrt(self.running_var[page] + self.eps)
        return z.masked_fill(~has_gap, 0.0)

    @torch.no_grad()
    def _update(self, page: torch.Tensor, x: torch.Tensor) -> None:
        n = torch.zeros_like(self.running_mean).index_add_(0, page, torch.ones_like(x))
        total = torch.zeros_like(n).index_add_(0, page, x)
        square = torch.zeros_like(n).index_add_(0, page, x * x)
        seen = n > 0
        mean = total[seen] / n[seen]
        var = square[seen] / n[seen] - mean**2
        m = self.momentum
        self.running_mean[seen] = (1 - m) * self.running_mean[seen] + m * mean
        self.running_var[seen] = (1 - m) * self.running_var[seen] + m * var.clamp(min=0)


class TimeAttentionBiLSTM(nn.Module):
    """Fixed-length embedding of a click-stream session, learned without labels.

    FinDeepBehaviorCluster (Min et al., eBay, 2021, arXiv 2101.04285) feeds page tokens
    and the time spent between them to a Bi-LSTM whose attention depends on the time
    intervals, so that sessions with the same page path but machine-regular timing embed
    apart from human ones. Here: token embedding ++ Time2Vec(log dwell) ++
    Time2Vec(per-page dwell score, :class:`PageDwellNorm`) -> Bi-LSTM -> additive
    attention ``v^T tanh(W_h h_t + W_tau tau_t)`` over real events (``tau_t`` both time
    encodings) -> linear projection of the attended state ++ the session's mean per-page
    score encoding. The raw dwell shows machine *speed*; the per-page score shows time
    spent on the wrong pages at human speed, and its session mean (how far the scores
    spread, through the sines) reaches the embedding without waiting for the LSTM to
    learn to carry it.

    Parameters
    ----------
    vocab_size : int
        Number of token ids including ``0`` (PAD) and ``1`` (OOV).
    token_dim : int
        Page embedding size.
    time_dim : int
        Time-interval encoding size.
    hidden_size : int
        LSTM state size per direction.
    embedding_dim : int
        Output size.
    num_layers : int
        Stacked LSTM layers.
    dropout : float
        On LSTM inputs (and between layers when ``num_layers > 1``).

    Examples
    --------
    >>> import numpy as np
    >>> from ops.sequence import collate_sequences
    >>> enc = TimeAttentionBiLSTM(vocab_size=50)
    >>> batch = collate_sequences([np.array([2, 3, 4])], [np.array([0.0, 0.6, 0.6])], 16)
    >>> tuple(enc(batch).shape)
    (1, 32)
    >>> z, attention = enc(batch, return_attention=True)
    >>> tuple(attention.shape)
    (1, 16)
    """

    def __init__(
        self,
        vocab_size: int,
        token_dim: int = 32,
        time_dim: int = 16,
        hidden_size: int = 64,
        embedding_dim: int = 32,
        num_layers: int = 1,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.token_embedding = nn.Embedding(vocab_size, token_dim, padding_idx=PAD)
        self.time_encoding = TimeEncoding(time_dim)
        self.page_dwell = PageDwellNorm(vocab_size)
        self.page_time_encoding = TimeEncoding(time_dim)
        self.input_dropout = nn.Dropout(dropout)
        self.lstm = MaskedBiLSTM(token_dim + 2 * time_dim, hidden_size, num_layers, dropout)
        self.attn_hidden = nn.Linear(2 * hidden_size, hidden_size)
        self.attn_time = nn.Linear(2 * time_dim, hidden_size, bias=False)
        self.attn_score = nn.Linear(hidden_size, 1, bias=False)
        self.projection = nn.Linear(2 * hidden_size + time_dim, embedding_dim)

    def forward(
        self, batch: SequenceBatch, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Embed ``batch`` to ``[B, embedding_dim]``.

        With ``return_attention`` also returns the ``[B, T]`` attention weights (zero on
        padding), for explaining which events drove a session's embedding. A keyword of
        ``forward`` rather than a separate method, so it also works through a DDP wrapper.
        """
        # An empty session attends to its single PAD slot rather than producing NaN.
        mask = batch.mask.clone()
        mask[:, 0] |= ~mask.any(dim=1)
        tokens = batch.tokens.clamp(0, self.vocab_size - 1)
        seconds = log_seconds(batch.log_dwell, self.time_encoding.min_seconds)
        score = self.page_dwell(tokens, seconds, batch.mask)
        page_tau = self.page_time_encoding.encode(score)
        tau = torch.cat([self.time_encoding.encode(seconds), page_tau], dim=-1)
        x = torch.cat([self.token_embedding(tokens), tau], dim=-1)
        h = self.lstm(self.input_dropout(x), mask.sum(dim=1))
        scores = self.attn_score(torch.tanh(self.attn_hidden(h) + self.attn_time(tau)))
        scores = scores.squeeze(-1).masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1)
        pooled = torch.bmm(weights.unsqueeze(1), h).squeeze(1)
        z = self.projection(torch.cat([pooled, _masked_mean(page_tau, mask)], dim=-1))
        if return_attention:
            return z, weights
        return z


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[B, T, D]`` averaged over the real steps of each row."""
    weights = mask.unsqueeze(-1).to(x.dtype)
    return (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class MaskedBiLSTM(nn.Module):
    """Bidirectional LSTM over right-padded batches, exact on the real events.

    Each session is reversed *within its length* for the backward direction, so padding
    only ever trails the real events and cannot leak into them. Same result as packed
    sequences, but packing with mixed lengths takes PyTorch's slow CPU path, and cropped
    views always have mixed lengths (figures in benchmarks/README.md).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float) -> None:
        super().__init__()
        sizes = [input_size] + [2 * hidden_size] * (num_layers - 1)
        self.forward_layers = nn.ModuleList(
            nn.LSTM(n, hidden_size, batch_first=True) for n in sizes
        )
        self.backward_layers = nn.ModuleList(
            nn.LSTM(n, hidden_size, batch_first=True) for n in sizes
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``[B, T, input_size]`` and ``[B]`` real lengths to ``[B, T, 2 * hidden_size]``."""
        t = x.shape[1]
        lengths = lengths.to(x.device)
        # Eval batches of equal length reverse by a flip (``ops.sequence.embed`` itself uses the
        # unpadded rewrite, ``_equal_length``); training batches always mix lengths, and skip
        # the check's device sync.
        index = None
        if self.training or not bool((lengths == t).all()):
            steps = torch.arange(t, device=x.device)
            # (len - 1 - i) mod T reverses the real prefix and maps padding onto padding.
            index = (lengths.unsqueeze(1) - 1 - steps).remainder(t).unsqueeze(-1)
        h = x
        for i, (fwd, bwd) in enumerate(zip(self.forward_layers, self.backward_layers, strict=True)):
            if i > 0:
                h = self.dropout(h)
            ahead, _ = fwd(h)
            behind, _ = bwd(_reverse(h, index))
            h = torch.cat([ahead, _reverse(behind, index)], dim=-1)
        return h


def _reverse(x: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
    """Each row of ``[B, T, D]`` reversed within its length (``index``), or whole (``None``)."""
    if index is None:
        return x.flip(1)
    return torch.gather(x, 1, index.expand(-1, -1, x.shape[-1]))
