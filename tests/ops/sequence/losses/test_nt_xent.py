import pytest
import torch
import torch.nn.functional as F

from ops.sequence.losses import NTXentLoss


def _reference(z0: torch.Tensor, z1: torch.Tensor, t: float) -> torch.Tensor:
    """Loop-form NT-Xent straight from Chen et al. 2020, Eq. 1."""
    z = F.normalize(torch.cat([z0, z1]), dim=1)
    n = z0.shape[0]
    losses = []
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        sims = torch.stack([z[i] @ z[k] / t for k in range(2 * n) if k != i])
        losses.append(-(z[i] @ z[j] / t) + torch.logsumexp(sims, dim=0))
    return torch.stack(losses).mean()


def test_matches_reference_and_is_symmetric() -> None:
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    loss = NTXentLoss(temperature=0.3)
    assert torch.allclose(loss(z0, z1), _reference(z0, z1, 0.3), atol=1e-5)
    assert torch.allclose(loss(z0, z1), loss(z1, z0), atol=1e-6)


def test_aligned_views_beat_random_and_scale_is_ignored() -> None:
    g = torch.Generator().manual_seed(1)
    z = torch.randn(32, 16, generator=g)
    loss = NTXentLoss(temperature=0.1)
    aligned = loss(z, z + 0.01 * torch.randn(32, 16, generator=g))
    unrelated = loss(z, torch.randn(32, 16, generator=g))
    assert aligned < unrelated
    assert torch.allclose(loss(z, 5 * z), loss(z, z), atol=1e-5)


def test_temperature_sharpens_the_loss() -> None:
    g = torch.Generator().manual_seed(2)
    z = torch.randn(32, 16, generator=g)
    z1 = z + 0.05 * torch.randn(32, 16, generator=g)
    # With well-aligned views a lower temperature separates the positive more sharply.
    losses = [float(NTXentLoss(temperature=t)(z, z1)) for t in (0.05, 0.1, 0.5, 1.0)]
    assert losses == sorted(losses)
    # At high temperature every pair looks alike: the loss tends to log(2N - 1).
    assert abs(float(NTXentLoss(temperature=1e4)(z, z1)) - torch.log(torch.tensor(63.0))) < 1e-2


def test_gradients_flow_and_bad_arguments_fail_fast() -> None:
    z0 = torch.randn(4, 8, requires_grad=True)
    z1 = torch.randn(4, 8, requires_grad=True)
    NTXentLoss()(z0, z1).backward()
    assert z0.grad is not None and torch.isfinite(z0.grad).all()
    with pytest.raises(ValueError):
        NTXentLoss(temperature=0.0)
    with pytest.raises(ValueError):
        NTXentLoss(gather_distributed=True)  # torch.distributed not initialised
    with pytest.raises(ValueError):
        NTXentLoss()(torch.randn(4, 8), torch.randn(3, 8))


def _gather_worker(rank: int, world: int, store: str) -> None:
    import time

    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        _check_gathered_loss(rank, world)
        # Tear down only once every rank is done with gloo, so no rank closes its pairs
        # while another may still read from them; the rendezvous goes through a file store.
        finished = dist.FileStore(f"{store}.finished", world)
        finished.add("ranks", 1)
        while finished.add("ranks", 0) < world:
            time.sleep(0.01)
    finally:
        dist.destroy_process_group()


def _check_gathered_loss(rank: int, world: int) -> None:
    """Compare one rank's gathered loss and gradients with the global batch's.

    Its own frame, so that the autograd graphs of the gathered tensors are freed before
    ``destroy_process_group``, not at interpreter exit.
    """
    import torch.distributed as dist

    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(2 * world, 8, generator=g), torch.randn(2 * world, 8, generator=g)
    expected = NTXentLoss(temperature=0.2)(z0.requires_grad_(), z1.requires_grad_())
    expected.backward()
    rows = slice(2 * rank, 2 * rank + 2)
    l0 = z0.detach()[rows].clone().requires_grad_()
    l1 = z1.detach()[rows].clone().requires_grad_()
    local = NTXentLoss(temperature=0.2, gather_distributed=True)(l0, l1)
    local.backward()
    mean = local.detach().clone()
    dist.all_reduce(mean)
    assert torch.allclose(mean / world, expected, atol=1e-5)
    # all_gather's backward sums every rank's loss into the local grads; DDP then
    # averages, which the division by world reproduces.
    assert torch.allclose(l0.grad / world, z0.grad[rows], atol=1e-5)
    assert torch.allclose(l1.grad / world, z1.grad[rows], atol=1e-5)


def test_gather_distributed_equals_the_global_batch(tmp_path: object) -> None:
    import torch.multiprocessing as mp

    mp.spawn(_gather_worker, args=(2, f"{tmp_path}/store"), nprocs=2, join=True)
