import numpy as np
import pytest
import torch

from ops.sequence import TimeAttentionBiLSTM, collate_sequences
from ops.sequence._encoder import PageDwellNorm, log_seconds

torch.set_num_threads(2)
RNG = np.random.default_rng(0)
TOKENS = [RNG.integers(2, 30, size=n).astype(np.int32) for n in (5, 12, 1, 20)]
DWELL = [RNG.lognormal(0.0, 1.0, size=len(t)).astype(np.float32) for t in TOKENS]


def _encoder(**kw: int) -> TimeAttentionBiLSTM:
    torch.manual_seed(0)
    return TimeAttentionBiLSTM(vocab_size=30, **kw).eval()


def test_output_shape_and_attention() -> None:
    enc = _encoder(embedding_dim=24)
    batch = collate_sequences(TOKENS, DWELL, max_len=16)
    z, weights = enc(batch, return_attention=True)
    assert z.shape == (4, 24) and weights.shape == (4, 16)
    assert torch.allclose(weights.sum(dim=1), torch.ones(4))
    assert weights.masked_select(~batch.mask).eq(0).all()


def test_padding_does_not_change_embedding() -> None:
    enc = _encoder()
    pairs = zip(TOKENS, DWELL, strict=True)
    alone = torch.cat([enc(collate_sequences([t], [d], 20)) for t, d in pairs])
    together = enc(collate_sequences(TOKENS, DWELL, max_len=20))
    wide = enc(collate_sequences(TOKENS, DWELL, max_len=64))
    assert torch.allclose(alone, together, atol=1e-5)
    assert torch.allclose(together, wide, atol=1e-5)


def test_embedding_depends_on_dwell_and_order() -> None:
    enc = _encoder()
    base = enc(collate_sequences(TOKENS[1:2], DWELL[1:2], 16))
    slower = enc(collate_sequences(TOKENS[1:2], [DWELL[1] * 3], 16))
    reversed_ = enc(collate_sequences([TOKENS[1][::-1].copy()], [DWELL[1][::-1].copy()], 16))
    assert not torch.allclose(base, slower, atol=1e-4)
    assert not torch.allclose(base, reversed_, atol=1e-4)


def test_empty_session_and_out_of_range_tokens_are_safe() -> None:
    enc = _encoder()
    batch = collate_sequences(
        [np.zeros(0, np.int32), np.array([2, 999], np.int32)],
        [np.zeros(0, np.float32), np.array([0.0, 1.0], np.float32)],
        max_len=4,
    )
    assert torch.isfinite(enc(batch)).all()


def test_seeded_init_is_deterministic_and_gradients_reach_time_encoding() -> None:
    batch = collate_sequences(TOKENS, DWELL, max_len=16)
    a, b = _encoder().train(), _encoder().train()
    torch.manual_seed(1)
    za = a(batch)
    torch.manual_seed(1)
    zb = b(batch)
    assert torch.equal(za, zb)
    za.pow(2).sum().backward()
    assert a.time_encoding.periodic.weight.grad is not None
    assert a.time_encoding.periodic.weight.grad.abs().sum() > 0
    assert a.attn_time.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("num_layers", [1, 2])
def test_stacked_layers(num_layers: int) -> None:
    enc = _encoder(num_layers=num_layers)
    assert enc(collate_sequences(TOKENS, DWELL, 8)).shape == (4, 32)


def test_page_dwell_norm_scores_dwell_against_the_page_it_was_spent_on() -> None:
    # Page 2 is read for ~40 s, page 3 clicked through in ~3 s; dwell[t] is time on page t-1.
    rng = np.random.default_rng(1)
    tokens, dwell = [], []
    for _ in range(200):
        t = rng.choice([2, 3], size=10)
        d = np.where(np.roll(t, 1) == 2, 40.0, 3.0) * rng.lognormal(0, 0.2, 10)
        d[0] = 0.0
        tokens.append(t.astype(np.int32))
        dwell.append(d.astype(np.float32))
    norm = PageDwellNorm(vocab_size=5, momentum=0.9).train()
    for start in range(0, 200, 50):
        b = collate_sequences(tokens[start : start + 50], dwell[start : start + 50], 12)
        norm(b.tokens, log_seconds(b.log_dwell), b.mask)
    assert norm.running_mean[2] == pytest.approx(np.log(40.0), abs=0.1)
    assert norm.running_mean[3] == pytest.approx(np.log(3.0), abs=0.1)
    norm.eval()
    before = norm.running_mean.clone()
    # 40 s after page 2 is usual, 40 s after page 3 is not; the first step has no gap.
    probe = collate_sequences(
        [np.array([2, 3, 4], np.int32), np.array([3, 2], np.int32)],
        [np.array([5.0, 40.0, 40.0], np.float32), np.array([0.0, 40.0], np.float32)],
        4,
    )
    score = norm(probe.tokens, log_seconds(probe.log_dwell), probe.mask)
    assert torch.equal(norm.running_mean, before)  # eval mode does not learn
    assert score[0, 0] == 0 and score[0, 3] == 0  # no previous page; padding
    assert abs(score[0, 1]) < 1.5 and score[1, 1] > 5


def test_embedding_depends_on_which_page_a_dwell_is_spent_on() -> None:
    # Same pages, same set of dwell values: only the pairing differs (a content-blind bot).
    enc = _encoder()
    t = np.array([2, 3, 2, 3, 2, 3], np.int32)
    paired = np.array([0.0, 40.0, 3.0, 40.0, 3.0, 40.0], np.float32)
    swapped = np.array([0.0, 3.0, 40.0, 3.0, 40.0, 3.0], np.float32)
    za = enc(collate_sequences([t], [paired], 8))
    zb = enc(collate_sequences([t], [swapped], 8))
    assert not torch.allclose(za, zb, atol=1e-4)
