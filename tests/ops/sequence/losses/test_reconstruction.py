import numpy as np
import pytest
import torch

from ops.sequence import TimeAttentionBiLSTM, collate_sequences
from ops.sequence.losses import SequenceReconstructionLoss

torch.set_num_threads(2)
RNG = np.random.default_rng(0)
TOKENS = [RNG.integers(2, 12, size=n).astype(np.int32) for n in RNG.integers(3, 12, size=16)]
DWELL = [RNG.lognormal(0, 1, size=len(t)).astype(np.float32) for t in TOKENS]


def _setup(**kw: object) -> tuple[TimeAttentionBiLSTM, SequenceReconstructionLoss]:
    torch.manual_seed(0)
    enc = TimeAttentionBiLSTM(vocab_size=12, embedding_dim=16, hidden_size=32, dropout=0.0)
    return enc, SequenceReconstructionLoss(12, 16, hidden_size=32, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("dwell_loss", ["gaussian_nll", "mse"])
def test_loss_decreases_on_a_tiny_set(dwell_loss: str) -> None:
    enc, loss_fn = _setup(dwell_loss=dwell_loss)
    batch = collate_sequences(TOKENS, DWELL, max_len=12)
    opt = torch.optim.Adam([*enc.parameters(), *loss_fn.parameters()], lr=1e-2)
    losses = []
    for _ in range(40):
        loss = loss_fn(enc(batch), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.6 * losses[0]


def test_padding_is_ignored() -> None:
    enc, loss_fn = _setup()
    enc.eval()
    narrow = collate_sequences(TOKENS, DWELL, max_len=12)
    wide = collate_sequences(TOKENS, DWELL, max_len=30)
    a = loss_fn(enc(narrow), narrow)
    b = loss_fn(enc(wide), wide)
    assert torch.allclose(a, b, atol=1e-5)


def test_dwell_weight_zero_leaves_timing_head_untrained() -> None:
    enc, loss_fn = _setup(dwell_weight=0.0)
    batch = collate_sequences(TOKENS, DWELL, max_len=12)
    loss_fn(enc(batch), batch).backward()
    assert loss_fn.dwell_head.weight.grad is not None
    assert loss_fn.dwell_head.weight.grad.abs().sum() == 0
    assert loss_fn.token_head.weight.grad.abs().sum() > 0


def test_unknown_dwell_loss_is_rejected() -> None:
    with pytest.raises(ValueError):
        SequenceReconstructionLoss(12, 16, dwell_loss="l1")  # type: ignore[arg-type]
