"""Inference of :class:`TimeAttentionBiLSTM` on batches without padding, in fewer operators.

``ops.sequence.embed`` feeds the encoder batches whose sessions all have the same length. The
module's own ``forward`` still pays for padding it does not have there: it clones and masks,
flips the LSTM input and output for the backward direction and concatenates the two, and
builds each Time2Vec by a concatenation. On the shop's 50k sessions those operators and the
per-batch collation took about half of the embedding's 1.15 s, the Bi-LSTM itself the other
half (profiled, idle machine; ``benchmarks/README.md``, "Scoring").

:class:`EqualLengthEncoder` computes the same function of the same weights for unpadded
batches: the two directions run as one bidirectional ``nn.LSTM`` (oneDNN reverses and
concatenates inside its kernel, which is exact when no step is padding), both Time2Vecs come
from one contiguous block, and log seconds are taken once for every event of the call. Eval
mode only: no dropout, the per-page dwell statistics fixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ops.sequence._encoder import TimeAttentionBiLSTM, TimeEncoding
from ops.sequence._sequence_batch import collate_sequences, length_buckets


class EqualLengthEncoder:
    """A trained :class:`TimeAttentionBiLSTM`'s weights, arranged for unpadded batches.

    Parameters
    ----------
    encoder : TimeAttentionBiLSTM
        The model. Its LSTM, Time2Vec and per-page statistics are copied when this is built
        (``embed`` builds one per call), so build it after training, not before.

    Examples
    --------
    >>> import numpy as np
    >>> enc = TimeAttentionBiLSTM(vocab_size=50).eval()
    >>> fast = EqualLengthEncoder(enc)
    >>> tokens = torch.tensor([[2, 3, 4]])
    >>> seconds = torch.log(torch.tensor([[1e-2, 0.8, 0.8]]))
    >>> tuple(fast(tokens, seconds).shape)
    (1, 32)
    """

    def __init__(self, encoder: TimeAttentionBiLSTM) -> None:
        self.encoder = encoder
        self.vocab_size = encoder.vocab_size
        self.min_seconds = encoder.time_encoding.min_seconds
        self.time_dim = encoder.time_encoding.periodic.out_features + 1
        # [2, time_dim] weights and biases: raw dwell's Time2Vec, then the per-page score's.
        encodings = (encoder.time_encoding, encoder.page_time_encoding)
        self.time_weight = torch.stack([_time2vec_parts(e)[0] for e in encodings])
        self.time_bias = torch.stack([_time2vec_parts(e)[1] for e in encodings])
        self.lstm = _bidirectional(encoder)
        # Attention scores v . tanh(z) as (2 v) . sigmoid(2 z): tanh(z) = 2 sigmoid(2 z) - 1, and
        # the softmax over steps drops the constant -sum(v). torch's CPU tanh took 1.4 ms for
        # a 1,024 x 16 batch's 524k values, its sigmoid 0.2 ms; the 2s are folded into the
        # weights, and both linear terms go into one buffer (addmm): 3.7 -> 1.9 ms a batch.
        self.attn_hidden_weight = 2 * encoder.attn_hidden.weight.detach()
        self.attn_hidden_bias = 2 * encoder.attn_hidden.bias.detach()
        self.attn_time_weight = 2 * encoder.attn_time.weight.detach()
        self.attn_score_weight = 2 * encoder.attn_score.weight.detach()
        norm = encoder.page_dwell
        self.page_mean = norm.running_mean.detach()
        self.page_scale = torch.rsqrt(norm.running_var.detach() + norm.eps)

    def __call__(self, tokens: torch.Tensor, seconds: torch.Tensor) -> torch.Tensor:
        """``[B, T]`` page ids and log-second dwell, no padding, to ``[B, embedding_dim]``."""
        enc = self.encoder
        tokens = tokens.clamp(0, self.vocab_size - 1)
        # PageDwellNorm: dwell[t] was spent on page t - 1; the first step has no gap.
        page = tokens[:, :-1]
        times = torch.zeros(*seconds.shape, 2, 1, dtype=seconds.dtype, device=seconds.device)
        times[..., 0, 0] = seconds
        times[:, 1:, 1, 0] = (seconds[:, 1:] - self.page_mean[page]) * self.page_scale[page]
        # Both Time2Vecs in one contiguous block: a sine of every channel, then the two linear
        # channels written back (a sine of a strided slice cost twice the whole block's).
        tau = torch.addcmul(self.time_bias, times, self.time_weight)
        linear = tau[..., 0].clone()
        tau = tau.sin_()
        tau[..., 0] = linear
        tau = tau.flatten(2)  # [B, T, 2 time_dim]: raw dwell's Time2Vec ++ per-page score's
        x = torch.cat([F.embedding(tokens, enc.token_embedding.weight), tau], dim=-1)
        h, _ = self.lstm(x)
        attn = F.linear(tau, self.attn_time_weight, self.attn_hidden_bias).flatten(0, 1)
        attn.addmm_(h.flatten(0, 1), self.attn_hidden_weight.t()).sigmoid_()
        scores = F.linear(attn, self.attn_score_weight).view(h.shape[:2])
        weights = torch.softmax(scores, dim=1)
        pooled = torch.bmm(weights.unsqueeze(1), h).squeeze(1)
        page_mean = tau[..., self.time_dim :].mean(dim=1)
        return enc.projection(torch.cat([pooled, page_mean], dim=-1))

    def seconds(self, dwell: np.ndarray) -> np.ndarray:
        """Raw dwell seconds to the encoder's log seconds (NaN and negative as instant)."""
        clean = np.nan_to_num(np.asarray(dwell, dtype=np.float32), nan=0.0)
        return np.log(np.maximum(clean, np.float32(self.min_seconds)))


def _time2vec_parts(encoding: TimeEncoding) -> tuple[torch.Tensor, torch.Tensor]:
    """``TimeEncoding``'s channels as one weight and one bias vector, linear channel first."""
    weight = torch.cat([encoding.linear.weight, encoding.periodic.weight])[:, 0]
    return weight.detach(), torch.cat([encoding.linear.bias, encoding.periodic.bias]).detach()


def _bidirectional(encoder: TimeAttentionBiLSTM) -> nn.LSTM:
    """One bidirectional ``nn.LSTM`` holding the encoder's forward and backward LSTMs' weights."""
    layers = encoder.lstm
    first = layers.forward_layers[0]
    lstm = nn.LSTM(
        first.input_size,
        first.hidden_size,
        num_layers=len(layers.forward_layers),
        batch_first=True,
        bidirectional=True,
    )
    with torch.no_grad():
        for i, pair in enumerate(zip(layers.forward_layers, layers.backward_layers, strict=True)):
            for suffix, layer in zip(("", "_reverse"), pair, strict=True):
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(lstm, f"{name}_l{i}{suffix}").copy_(getattr(layer, f"{name}_l0"))
    param = next(encoder.parameters())
    return lstm.to(device=param.device, dtype=param.dtype).eval()


def embed_equal_length(
    encoder: TimeAttentionBiLSTM,
    tokens: Sequence[np.ndarray],
    dwell: Sequence[np.ndarray],
    max_len: int,
    batch_size: int,
) -> np.ndarray:
    """``ops.sequence.embed`` for a :class:`TimeAttentionBiLSTM`: ``float32 [N, embedding_dim]``.

    The sessions end to end, then :func:`embed_concatenated`.
    """
    lengths = np.fromiter(map(len, tokens), np.int64, len(tokens))
    return embed_concatenated(
        encoder,
        _concatenate(tokens, np.int64),
        _concatenate(dwell, np.float32),
        np.cumsum(lengths),
        max_len,
        batch_size,
    )


def embed_concatenated(
    encoder: TimeAttentionBiLSTM,
    flat_tokens: np.ndarray,
    flat_dwell: np.ndarray,
    ends: np.ndarray,
    max_len: int,
    batch_size: int,
) -> np.ndarray:
    """Embed sessions given end to end: session ``i`` ends at ``ends[i]`` in the flat arrays.

    The form a list column has in Arrow (values and offsets), so a caller reading sessions
    from Parquet skips splitting them into one array per session (~2 s at 1M sessions) only
    for this function to join them again. The encoder must be in eval mode.

    Batches of equal kept length (``length_buckets``) through :class:`EqualLengthEncoder`;
    empty sessions (one PAD step each, no unpadded form) through the module itself. On CPU the
    batches run on a pool of as many threads as torch has intra-op threads, each operator on
    one thread: an LSTM step of a 1,024-session batch is too small to keep two cores busy
    (1.3 of 2 cores at best), two batches at once are not (0.50-0.57 s against 0.81-1.04 s for
    the shop's 50k sessions, idle machine). Each batch's result depends only on its rows, so
    the output does not depend on which thread ran it.

    >>> enc = TimeAttentionBiLSTM(vocab_size=50).eval()
    >>> embed_concatenated(enc, np.array([2, 3, 4]), np.array([0.0, 0.6, 1.2]),
    ...                    np.array([2, 2, 3]), 64, 1024).shape
    (3, 32)
    """
    ends = np.asarray(ends, dtype=np.int64)
    if len(flat_tokens) != len(flat_dwell) or (len(ends) and ends[-1] != len(flat_tokens)):
        raise ValueError(
            f"{len(flat_tokens)} tokens, {len(flat_dwell)} dwell values, sessions ending at "
            f"{ends[-1] if len(ends) else 0}"
        )
    device = next(encoder.parameters()).device
    fast = EqualLengthEncoder(encoder)
    kept = np.minimum(np.diff(ends, prepend=0), max_len)
    flat_tokens = np.asarray(flat_tokens, dtype=np.int64)
    flat_seconds = fast.seconds(flat_dwell)
    out = np.empty((len(ends), encoder.embedding_dim), dtype=np.float32)

    def run(rows: np.ndarray) -> None:
        length = int(kept[rows[0]])
        with torch.inference_mode():  # thread-local: each pool thread enters it
            if length == 0:
                nothing = [np.zeros(0, np.int64)] * len(rows)
                z = encoder(collate_sequences(nothing, nothing, 1).to(device))
            else:
                z = fast(
                    torch.from_numpy(gather_windows(flat_tokens, ends, rows, length)).to(device),
                    torch.from_numpy(gather_windows(flat_seconds, ends, rows, length)).to(device),
                )
            out[rows] = z.float().cpu().numpy()

    batches = length_buckets(kept, batch_size)
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads < 2 or len(batches) < 2:
        for rows in batches:
            run(rows)
        return out
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(threads) as pool:
            for _ in pool.map(run, batches):  # re-raises a batch's exception
                pass
    finally:
        torch.set_num_threads(threads)
    return out


def gather_windows(flat: np.ndarray, ends: np.ndarray, rows: np.ndarray, length: int) -> np.ndarray:
    """The last ``length`` values of each of ``rows``' sessions in ``flat``, one row each.

    ``ends[i]`` is where session ``i`` ends in the concatenation ``flat``.

    >>> gather_windows(np.arange(10), np.array([3, 10]), np.array([1, 0]), 2).tolist()
    [[8, 9], [1, 2]]
    """
    return flat[(ends[rows] - length)[:, None] + np.arange(length)]


def _concatenate(parts: Sequence[np.ndarray], dtype: type) -> np.ndarray:
    """The sessions' arrays end to end as ``dtype`` (empty when there are none)."""
    if not len(parts):
        return np.zeros(0, dtype=dtype)
    return np.concatenate(parts).astype(dtype, copy=False)
