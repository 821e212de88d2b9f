"""Learning tests: an objective must put a timing-only bot pattern into the embedding."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from ops.sequence import (
    SequenceCollator,
    SequenceDataset,
    TimeAttentionBiLSTM,
    build_objective,
    embed,
    set_seed,
    train_epoch,
)
from tests.ops.timing_data import VOCAB, knn_purity, timing_only_sessions

torch.set_num_threads(2)


def _train(name: str, encoder: TimeAttentionBiLSTM, data: tuple, epochs: int) -> float:
    tokens, dwell, y = data
    objective = build_objective(name, encoder)
    opt = torch.optim.Adam(objective.parameters(), lr=5e-3)
    loader = DataLoader(
        SequenceDataset(tokens, dwell),
        batch_size=32,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
        collate_fn=SequenceCollator(32),
    )
    for _ in range(epochs):
        train_epoch(objective, loader, opt)
    return knn_purity(embed(encoder, tokens, dwell, max_len=32), y)


# Mean speed matched (human median 600 ms): only the regularity tells bots apart.
RHYTHM_ONLY = timing_only_sessions(1000, seed=0, human_median=0.6)


def test_reconstruction_learns_rhythm_from_scratch() -> None:
    # Low time frequencies hide the rhythm from an untrained encoder (the session mean of
    # the per-page encoding reaches the embedding directly, so plain U(-1, 1) ones do
    # not), so whatever separation appears here was learned by the objective.
    set_seed(0)
    encoder = TimeAttentionBiLSTM(VOCAB, token_dim=16, hidden_size=32, embedding_dim=16)
    for encoding in (encoder.time_encoding, encoder.page_time_encoding):
        nn.init.uniform_(encoding.periodic.weight, -0.1, 0.1)
    tokens, dwell, y = RHYTHM_ONLY
    assert knn_purity(embed(encoder, tokens, dwell, max_len=32), y) < 0.7
    assert _train("reconstruction", encoder, RHYTHM_ONLY, epochs=4) >= 0.9


@pytest.mark.parametrize("name", ["reconstruction", "contrastive"])
def test_training_keeps_rhythm_in_the_embedding(name: str) -> None:
    # With the log-spaced time frequencies the rhythm is visible before training; the
    # objective must not wash it out in favour of page content.
    set_seed(0)
    encoder = TimeAttentionBiLSTM(VOCAB, token_dim=16, time_dim=8, hidden_size=32)
    assert _train(name, encoder, RHYTHM_ONLY, epochs=2) >= 0.9
