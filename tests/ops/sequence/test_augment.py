import numpy as np
import torch

from ops.constants import OOV
from ops.sequence import collate_sequences
from ops.sequence._augment import SessionAugment, jitter_time, mask_tokens, random_crop

RNG = np.random.default_rng(0)
LENGTHS = (1, 5, 17, 40, 40)
BATCH = collate_sequences(
    [np.arange(2, 2 + n, dtype=np.int32) for n in LENGTHS],
    [RNG.lognormal(0, 1, n).astype(np.float32) for n in LENGTHS],
    max_len=40,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_crop_is_a_contiguous_window_of_enough_events() -> None:
    for seed in range(20):
        out = random_crop(BATCH, min_ratio=0.6, generator=_gen(seed))
        for i, n in enumerate(LENGTHS):
            k = int(out.lengths[i])
            assert max(1, int(np.ceil(0.6 * n))) <= k <= n
            assert out.mask[i, :k].all() and not out.mask[i, k:].any()
            toks = out.tokens[i, :k]
            assert torch.equal(toks, torch.arange(int(toks[0]), int(toks[0]) + k))
            start = int(toks[0]) - 2
            assert torch.equal(out.log_dwell[i, :k], BATCH.log_dwell[i, start : start + k])
            assert out.tokens[i, k:].eq(0).all() and out.log_dwell[i, k:].eq(0).all()


def test_mask_tokens_hits_only_real_events_and_keeps_dwell() -> None:
    out = mask_tokens(BATCH, prob=0.5, generator=_gen())
    changed = out.tokens != BATCH.tokens
    assert changed.any() and (changed <= BATCH.mask).all()
    assert out.tokens[changed].eq(OOV).all()
    assert torch.equal(out.log_dwell, BATCH.log_dwell)


def test_jitter_keeps_a_regular_bot_regular() -> None:
    bot = collate_sequences([np.arange(2, 42)], [np.full(40, 0.6, np.float32)], max_len=48)
    dwell = torch.expm1(jitter_time(bot, sigma=0.05, generator=_gen()).log_dwell[0, :40])
    assert (dwell.std() / dwell.mean()) < 0.1
    assert (dwell - 0.6).abs().max() < 0.6 * 0.25
    out = jitter_time(BATCH, sigma=0.05, generator=_gen())
    assert out.log_dwell.masked_select(~BATCH.mask).eq(0).all()
    assert torch.equal(out.tokens, BATCH.tokens)


def test_session_augment_is_reproducible_with_a_generator() -> None:
    aug = SessionAugment()
    a, b = aug(BATCH, _gen(3)), aug(BATCH, _gen(3))
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.log_dwell, b.log_dwell)
    c = aug(BATCH, _gen(4))
    assert not torch.equal(a.log_dwell, c.log_dwell)
