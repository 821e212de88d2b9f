import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ops.sequence import (
    ContrastiveObjective,
    ReconstructionObjective,
    SequenceCollator,
    SequenceDataset,
    TimeAttentionBiLSTM,
    build_objective,
    embed,
    evaluate,
    set_seed,
    train_epoch,
)
from tests.ops.timing_data import VOCAB, timing_only_sessions

torch.set_num_threads(2)


def _small_encoder() -> TimeAttentionBiLSTM:
    return TimeAttentionBiLSTM(VOCAB, token_dim=16, time_dim=8, hidden_size=32, embedding_dim=16)


def _loader(tokens: list[np.ndarray], dwell: list[np.ndarray], batch_size: int) -> DataLoader:
    ds = SequenceDataset(tokens, dwell)
    gen = torch.Generator().manual_seed(0)
    return DataLoader(
        ds, batch_size=batch_size, shuffle=True, generator=gen, collate_fn=SequenceCollator(32)
    )


@pytest.mark.parametrize("name", ["reconstruction", "contrastive"])
def test_train_epoch_is_seeded_and_learns(name: str) -> None:
    tokens, dwell, _ = timing_only_sessions(48, seed=1)

    def run() -> list[float]:
        set_seed(0)
        objective = build_objective(name, _small_encoder())
        opt = torch.optim.Adam(objective.parameters(), lr=3e-3)
        loader = _loader(tokens, dwell, 16)
        return [train_epoch(objective, loader, opt, max_grad_norm=1.0) for _ in range(3)]

    first, second = run(), run()
    assert first == second
    assert first[-1] < first[0]


def test_evaluate_is_deterministic_and_restores_mode() -> None:
    tokens, dwell, _ = timing_only_sessions(40, seed=2)
    set_seed(0)
    for objective in (
        build_objective("contrastive", _small_encoder()),
        build_objective("reconstruction", _small_encoder()),
    ):
        objective.train()
        a = evaluate(objective, _loader(tokens, dwell, 16))
        b = evaluate(objective, _loader(tokens, dwell, 16))
        assert a == pytest.approx(b, rel=1e-6) and np.isfinite(a)
        assert objective.training


def test_build_objective_passes_config_and_rejects_unknown_names() -> None:
    enc = _small_encoder()
    rec = build_objective("reconstruction", enc, dwell_weight=2.0)
    con = build_objective("contrastive", enc, temperature=0.5)
    assert isinstance(rec, ReconstructionObjective) and rec.loss.dwell_weight == 2.0
    assert isinstance(con, ContrastiveObjective) and con.loss.temperature == 0.5
    with pytest.raises(ValueError):
        build_objective("masked_lm", enc)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        build_objective("contrastive", enc, dwell_weight=1.0)


def test_embed_shape_dtype_batching_and_mode() -> None:
    tokens, dwell, _ = timing_only_sessions(50, seed=3)
    set_seed(0)
    enc = _small_encoder().train()
    z = embed(enc, tokens, dwell, max_len=32, batch_size=7)
    assert z.shape == (50, 16) and z.dtype == np.float32
    np.testing.assert_allclose(z, embed(enc, tokens, dwell, max_len=32, batch_size=64), atol=1e-5)
    assert enc.training
    assert embed(enc, [], [], max_len=32).shape == (0, 16)


def _ddp_worker(rank: int, world: int, store: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data.distributed import DistributedSampler

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        tokens, dwell, _ = timing_only_sessions(64, seed=4)
        ds = SequenceDataset(tokens, dwell)
        sampler = DistributedSampler(ds, num_replicas=world, rank=rank, seed=0)
        loader = DataLoader(ds, batch_size=8, sampler=sampler, collate_fn=SequenceCollator(32))
        for name, cfg in (("reconstruction", {}), ("contrastive", {"gather_distributed": True})):
            set_seed(0)
            encoder = _small_encoder()
            model = DistributedDataParallel(build_objective(name, encoder, **cfg))
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            loss = train_epoch(model, loader, opt)
            assert np.isfinite(loss) and np.isfinite(evaluate(model, loader))
            flat = torch.cat([p.detach().flatten() for p in model.parameters()])
            others = [torch.zeros_like(flat) for _ in range(world)]
            dist.all_gather(others, flat)
            assert all(torch.equal(o, others[0]) for o in others)  # replicas stay in sync
            assert embed(encoder, tokens[:5], dwell[:5], max_len=32).shape == (5, 16)
    finally:
        dist.destroy_process_group()


def test_train_epoch_under_ddp_with_two_gloo_ranks(tmp_path: object) -> None:
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, f"{tmp_path}/store"), nprocs=2, join=True)
