"""The inference rewrite for unpadded batches (``EqualLengthEncoder``) against the module."""

import numpy as np
import pytest
import torch

from ops.sequence import (
    TimeAttentionBiLSTM,
    collate_sequences,
    embed,
    embed_concatenated,
    set_seed,
)
from ops.sequence._encoder import log_seconds
from ops.sequence._equal_length import EqualLengthEncoder

VOCAB = 30


def _encoder(num_layers: int) -> TimeAttentionBiLSTM:
    set_seed(0)
    encoder = TimeAttentionBiLSTM(
        VOCAB, token_dim=8, time_dim=4, hidden_size=16, embedding_dim=8, num_layers=num_layers
    )
    # Per-page statistics away from their (0, 1) start, as after training.
    encoder.page_dwell.running_mean.uniform_(-1.0, 2.0)
    encoder.page_dwell.running_var.uniform_(0.2, 3.0)
    return encoder.eval()


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("length", [1, 2, 9])
def test_equals_the_module_on_an_unpadded_batch(num_layers: int, length: int) -> None:
    rng = np.random.default_rng(length)
    tokens = [rng.integers(0, VOCAB + 4, size=length) for _ in range(20)]  # some out of range
    dwell = [rng.exponential(3.0, size=length).astype(np.float32) for _ in range(20)]
    dwell[0][:] = [np.nan, -2.0, 0.0, *dwell[0][3:]][:length]
    encoder = _encoder(num_layers)
    batch = collate_sequences(tokens, dwell, length)
    fast = EqualLengthEncoder(encoder)
    seconds = torch.from_numpy(fast.seconds(np.stack(dwell)))
    with torch.no_grad():
        expected = encoder(batch)
        torch.testing.assert_close(seconds, log_seconds(batch.log_dwell), atol=1e-5, rtol=1e-6)
        got = fast(torch.from_numpy(np.stack(tokens)), seconds)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_parallel_batches_equal_one_thread_and_restore_the_thread_count() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 15, size=300)
    tokens = [rng.integers(2, VOCAB, size=k) for k in lengths]
    dwell = [rng.exponential(2.0, size=k) for k in lengths]
    encoder = _encoder(num_layers=1)
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        alone = embed(encoder, tokens, dwell, max_len=10, batch_size=16)
        torch.set_num_threads(2)
        pooled = embed(encoder, tokens, dwell, max_len=10, batch_size=16)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(saved)
    np.testing.assert_allclose(pooled, alone, atol=1e-6, rtol=0)
    assert encoder.eval().training is False


def test_sessions_end_to_end_embed_as_one_array_each() -> None:
    rng = np.random.default_rng(1)
    lengths = rng.integers(0, 15, size=200)  # empty sessions among them
    tokens = [rng.integers(2, VOCAB, size=k) for k in lengths]
    dwell = [rng.exponential(2.0, size=k).astype(np.float32) for k in lengths]
    encoder = _encoder(num_layers=1)
    each = embed(encoder, tokens, dwell, max_len=10, batch_size=16)
    joined = embed_concatenated(
        encoder, np.concatenate(tokens), np.concatenate(dwell), np.cumsum(lengths), 10, 16
    )
    np.testing.assert_array_equal(joined, each)
    with pytest.raises(ValueError, match="sessions ending at"):
        embed_concatenated(encoder, np.zeros(3, np.int64), np.zeros(3), np.array([2]), 10, 16)
