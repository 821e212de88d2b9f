"""Learning tests: does an objective put a timing-only bot pattern into the embedding?"""

import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestNeighbors
from torch import nn
from torch.utils.data import DataLoader

from ops.encoder import TimeAttentionBiLSTM
from ops.objectives import build_objective
from ops.sequence_batch import SequenceCollator, SequenceDataset
from ops.training import embed, set_seed, train_epoch

torch.set_num_threads(2)
VOCAB = 42


def timing_only_sessions(
    n: int, seed: int, human_median: float
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Same page distribution for both classes; bots click every 600 ms (±3 %)."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, VOCAB - 1)
    p /= p.sum()
    tokens, dwell = [], []
    y = np.arange(n) % 2
    for bot in y:
        length = int(rng.integers(8, 33))
        tokens.append((rng.choice(VOCAB - 2, size=length, p=p) + 2).astype(np.int32))
        if bot:
            d = 0.6 * np.exp(rng.normal(0.0, 0.03, length))
        else:
            d = rng.lognormal(np.log(human_median), 0.6, length)
        d[0] = 0.0
        dwell.append(d.astype(np.float32))
    return tokens, dwell, y


def knn_purity(z: np.ndarray, y: np.ndarray, k: int = 10) -> float:
    z = (z - z.mean(0)) / (z.std(0) + 1e-8)
    idx = NearestNeighbors(n_neighbors=k + 1).fit(z).kneighbors(z, return_distance=False)
    return float((y[idx[:, 1:]] == y[:, None]).mean())


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
    # Plain U(-1, 1) time frequencies hide the rhythm from an untrained encoder, so
    # whatever separation appears here was learned by the objective.
    set_seed(0)
    encoder = TimeAttentionBiLSTM(VOCAB, token_dim=16, hidden_size=32, embedding_dim=16)
    nn.Linear.reset_parameters(encoder.time_encoding.periodic)
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
