"""The fast embedding path (equal-length batches) against one padded batch in input order."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ops.sequence import (
    SequenceCollator,
    SequenceDataset,
    TimeAttentionBiLSTM,
    build_objective,
    collate_sequences,
    embed,
    set_seed,
    train_epoch,
)
from ops.sequence._sequence_batch import length_buckets
from tests.ops.timing_data import VOCAB, timing_only_sessions

torch.set_num_threads(2)
MAX_LEN = 12


def _sessions(n: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Lengths from 0 (empty) to past ``MAX_LEN`` (cropped), out-of-range ids and bad dwell."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, MAX_LEN + 6, size=n)
    tokens = [rng.integers(0, VOCAB + 3, size=k) for k in lengths]
    dwell = [rng.exponential(2.0, size=k).astype(np.float32) for k in lengths]
    for d in dwell[::7]:
        d[: min(len(d), 2)] = [np.nan, -1.0][: min(len(d), 2)]
    return tokens, dwell


def _encoder(trained: bool) -> TimeAttentionBiLSTM:
    set_seed(0)
    encoder = TimeAttentionBiLSTM(VOCAB, token_dim=8, time_dim=4, hidden_size=16, embedding_dim=8)
    if trained:
        tokens, dwell, _ = timing_only_sessions(64, seed=1)
        loader = DataLoader(
            SequenceDataset(tokens, dwell), batch_size=16, collate_fn=SequenceCollator(MAX_LEN)
        )
        objective = build_objective("contrastive", encoder)
        train_epoch(objective, loader, torch.optim.Adam(objective.parameters(), lr=3e-3))
    return encoder


def _reference(encoder: TimeAttentionBiLSTM, tokens: list, dwell: list) -> np.ndarray:
    """All sessions in one right-padded batch, in input order."""
    encoder.eval()
    with torch.no_grad():
        return encoder(collate_sequences(tokens, dwell, MAX_LEN)).numpy()


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("trained", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_one_padded_batch_in_input_order(trained: bool, seed: int) -> None:
    tokens, dwell = _sessions(90, seed)
    encoder = _encoder(trained)
    reference = _reference(encoder, tokens, dwell)
    for batch_size in (1, 5, 1024):
        z = embed(encoder, tokens, dwell, MAX_LEN, batch_size)
        assert z.shape == reference.shape and z.dtype == np.float32
        assert _cosine(z, reference).min() >= 0.999
        np.testing.assert_allclose(z, reference, atol=1e-5)


def test_output_follows_the_input_order_and_repeats_exactly() -> None:
    tokens, dwell = _sessions(60, seed=3)
    encoder = _encoder(trained=False)
    z = embed(encoder, tokens, dwell, MAX_LEN, batch_size=4)
    perm = np.random.default_rng(0).permutation(len(tokens))
    shuffled = embed(encoder, [tokens[i] for i in perm], [dwell[i] for i in perm], MAX_LEN, 4)
    np.testing.assert_allclose(shuffled, z[perm], atol=1e-6)
    assert np.array_equal(z, embed(encoder, tokens, dwell, MAX_LEN, batch_size=4))
    assert embed(encoder, [], [], MAX_LEN).shape == (0, 8)


def test_uniform_length_batch_equals_the_same_batch_padded() -> None:
    """The flip the encoder uses without padding gives the padded (gather) result."""
    rng = np.random.default_rng(4)
    tokens = [rng.integers(2, VOCAB, size=7) for _ in range(10)]
    dwell = [rng.exponential(2.0, size=7) for _ in range(10)]
    encoder = _encoder(trained=True).eval()
    with torch.no_grad():
        flipped = encoder(collate_sequences(tokens, dwell, 7))
        padded = encoder(collate_sequences(tokens, dwell, 11))
    torch.testing.assert_close(flipped, padded, atol=1e-5, rtol=0)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_collate_equals_padding_each_session_by_hand(seed: int) -> None:
    tokens, dwell = _sessions(40, seed)
    batch = collate_sequences(tokens, dwell, MAX_LEN)
    for i, (t, d) in enumerate(zip(tokens, dwell, strict=True)):
        k = min(len(t), MAX_LEN)
        kept_dwell = np.clip(np.nan_to_num(d[len(d) - k :], nan=0.0), 0.0, None)
        assert batch.tokens[i, :k].tolist() == t[len(t) - k :].tolist()
        assert batch.tokens[i, k:].eq(0).all() and batch.log_dwell[i, k:].eq(0).all()
        assert batch.mask[i].tolist() == [True] * k + [False] * (MAX_LEN - k)
        np.testing.assert_allclose(batch.log_dwell[i, :k].numpy(), np.log1p(kept_dwell), rtol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_length_buckets_cover_every_row_once_in_equal_length_batches(seed: int) -> None:
    lengths = np.random.default_rng(seed).integers(0, 9, size=200)
    batches = length_buckets(lengths, batch_size=7)
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(len(lengths)))
    assert all(0 < len(b) <= 7 and len(set(lengths[b].tolist())) == 1 for b in batches)
    assert all(np.all(np.diff(b) > 0) for b in batches)  # input order within a length
    assert [b.tolist() for b in length_buckets(lengths, 7)] == [b.tolist() for b in batches]
    assert length_buckets(np.zeros(0, np.int64), 7) == []
    with pytest.raises(ValueError):
        length_buckets(lengths, 0)
