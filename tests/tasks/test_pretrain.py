"""Pretraining on a real local Ray.

DDP equivalence, surviving a killed worker, safe checkpoints, and Ray Data embedding equal to
in-process embedding.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray.cloudpickle
import torch

from ops.sequence import embed
from tasks.embed import _embed_on_ray
from tasks.io import load_sequences
from tasks.pretrain import PretrainParams, PretrainResult, build_config, run_trainer
from tasks.pretrain_worker import STATE_FILE, load_encoder
from tests.tasks import fault_injection

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("local_ray")]

MAX_LEN = 32


def _params(**changes: Any) -> PretrainParams:
    base: dict[str, Any] = {
        "epochs": 3,
        "batch_size": 128,
        "max_train_sequences": 1500,
        "patience": 10,
        # No dropout: its random masks would differ between 1 and 2 workers.
        "encoder": {"hidden_size": 16, "embedding_dim": 8, "token_dim": 8, "dropout": 0.0},
    }
    return PretrainParams.model_validate({**base, **changes})


def _train(
    sequences: tuple[str, int], params: PretrainParams, **extra: Any
) -> tuple[Any, dict[str, Any]]:
    root, vocabulary_size = sequences
    config = {**build_config(root, vocabulary_size, MAX_LEN, params, None), **extra}
    config["threads_per_worker"] = 1  # both runs alike, and fair to a 2-core machine
    result = run_trainer(config, params, name=f"test-{uuid.uuid4().hex[:8]}")
    assert result.error is None, result.error
    with result.checkpoint.as_directory() as directory:
        state = torch.load(Path(directory) / STATE_FILE, weights_only=True)
    return result, state


@pytest.fixture(scope="module")
def two_workers(shop_sequences: tuple[str, int]) -> tuple[Any, dict[str, Any]]:
    return _train(shop_sequences, _params(num_workers=2))


def test_one_and_two_workers_reach_the_same_validation_loss(
    shop_sequences: tuple[str, int], two_workers: tuple[Any, dict[str, Any]]
) -> None:
    _, one = _train(shop_sequences, _params(num_workers=1))
    _, two = two_workers
    v1 = [h["val_loss"] for h in one["history"]]
    v2 = [h["val_loss"] for h in two["history"]]
    print(f"val_loss 1 worker {v1}\nval_loss 2 workers {v2}")
    assert len(v1) == len(v2) == 3
    assert v1[-1] < v1[0]  # it learns
    np.testing.assert_allclose(v2, v1, rtol=0.02)


def test_contrastive_one_and_two_workers_agree_with_gathered_negatives(
    shop_sequences: tuple[str, int],
) -> None:
    params = {"objective": "contrastive", "epochs": 2}
    _, one = _train(shop_sequences, _params(num_workers=1, **params))
    _, two = _train(shop_sequences, _params(num_workers=2, **params))
    v1 = [h["val_loss"] for h in one["history"]]
    v2 = [h["val_loss"] for h in two["history"]]
    print(f"contrastive val_loss 1 worker {v1}\ncontrastive val_loss 2 workers {v2}")
    np.testing.assert_allclose(v2, v1, rtol=0.02)


def test_a_killed_worker_resumes_from_the_last_checkpoint(
    shop_sequences: tuple[str, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The test harness's loop, shipped to the workers by value: they need not import tests.
    ray.cloudpickle.register_pickle_by_value(fault_injection)
    monkeypatch.setattr("tasks.pretrain.train_loop_per_worker", fault_injection.dying_once)
    marker = tmp_path / "killed"
    fault = {"epoch": 1, "step": 3, "rank": 1, "marker": str(marker), "delay_s": 5.0}
    _, state = _train(shop_sequences, _params(num_workers=2, max_failures=1), fault=fault)
    assert marker.read_text().startswith("epoch 1 step 3 rank 1")
    # The first attempt checkpointed epoch 0 and died in epoch 1; the second began at 1.
    assert state["starts"] == [0, 1]
    assert [h["epoch"] for h in state["history"]] == [0, 1, 2]
    assert state["epoch"] == 3


def test_checkpoint_holds_only_tensors_and_plain_values(
    two_workers: tuple[Any, dict[str, Any]],
) -> None:
    result, _ = two_workers
    best = result.get_best_checkpoint(metric="val_loss", mode="min")
    with best.as_directory() as directory:
        state = torch.load(Path(directory) / STATE_FILE, weights_only=True)
    assert {"objective", "optimizer", "epoch", "history"} <= state.keys()
    assert all(isinstance(v, torch.Tensor) for v in state["objective"].values())


def test_ray_data_embeddings_equal_in_process_embeddings(
    shop_sequences: tuple[str, int], two_workers: tuple[Any, dict[str, Any]]
) -> None:
    root, vocabulary_size = shop_sequences
    result, _ = two_workers
    best = result.get_best_checkpoint(metric="val_loss", mode="min")
    config = build_config(root, vocabulary_size, MAX_LEN, _params(), None)
    pretrained = PretrainResult(
        checkpoint=best.path,
        model_uri="",
        history=[],
        encoder_config=config["encoder"],
        max_len=MAX_LEN,
    )
    ray_ids, ray_vectors = _embed_on_ray(root, pretrained, batch_size=256)

    txn_ids, tokens, dwell = load_sequences(root)
    encoder = load_encoder(best.path, config["encoder"])
    local = embed(encoder, tokens, dwell, MAX_LEN, batch_size=512)
    order = {t: i for i, t in enumerate(txn_ids)}
    assert sorted(ray_ids) == sorted(txn_ids)
    np.testing.assert_allclose(ray_vectors, local[[order[t] for t in ray_ids]], atol=1e-5)
