"""NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


class NTXentLoss(nn.Module):
    """Contrastive loss on two views of the same batch (SimCLR).

    Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual
    Representations", arXiv 2002.05709. Each sample's other view is its positive, the
    other ``2N - 2`` views in the batch are negatives. A lower ``temperature`` weights
    hard negatives more (the paper finds 0.1-0.5 best); too low and training overfits
    to a few near-duplicates.

    Parameters
    ----------
    temperature : float
        Softmax temperature, > 0.
    gather_distributed : bool
        Take negatives from every DDP rank. Raises if ``torch.distributed`` is not
        initialised, rather than silently using one rank.

    Examples
    --------
    >>> loss_fn = NTXentLoss(temperature=0.1)
    >>> z0, z1 = torch.randn(8, 16), torch.randn(8, 16)
    >>> loss = loss_fn(z0, z1)
    >>> loss.shape
    torch.Size([])
    """

    def __init__(self, temperature: float = 0.1, gather_distributed: bool = False) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if gather_distributed and not (dist.is_available() and dist.is_initialized()):
            raise ValueError("gather_distributed=True needs an initialised torch.distributed")
        self.temperature = temperature
        self.gather_distributed = gather_distributed

    def forward(self, out0: torch.Tensor, out1: torch.Tensor) -> torch.Tensor:
        """Mean loss over both directions for ``[N, D]`` projections of the two views."""
        if out0.shape != out1.shape:
            raise ValueError(f"views differ in shape: {tuple(out0.shape)} vs {tuple(out1.shape)}")
        local = torch.cat([F.normalize(out0, dim=1), F.normalize(out1, dim=1)])
        n = out0.shape[0]
        offset = 0
        if self.gather_distributed and dist.get_world_size() > 1:
            z0_all, z1_all = _gather(local[:n]), _gather(local[n:])
            offset = dist.get_rank() * n
            keys = torch.cat([z0_all, z1_all])
            total = z0_all.shape[0]
        else:
            keys, total = local, n
        logits = local @ keys.T / self.temperature
        # Row i of view 0 sits at column offset+i of view-0 keys; its positive is the same
        # sample in view 1 (and vice versa); its own column is excluded, not a negative.
        rows = torch.arange(2 * n, device=local.device)
        own = torch.where(rows < n, offset + rows, total + offset + rows - n)
        positive = torch.where(rows < n, total + offset + rows, offset + rows - n)
        logits[rows, own] = float("-inf")
        return F.cross_entropy(logits, positive)


def _gather(x: torch.Tensor) -> torch.Tensor:
    """All-gather along dim 0, keeping gradients to the local shard."""
    return torch.cat(_AllGather.apply(x), dim=0)


class _AllGather(torch.autograd.Function):
    """``dist.all_gather`` whose backward sums every rank's gradient for the local shard.

    Written out, not ``torch.distributed.nn.functional.all_gather``: that one is deprecated
    in favour of functional collectives, and with gloo it aborted a rank at exit about one
    run in four ("terminate called without an active exception").
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Gather ``x`` from every rank, in rank order."""
        shards = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(shards, x.contiguous())
        return tuple(shards)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> torch.Tensor:
        """Sum each shard's gradient over the ranks; return this rank's."""
        summed = torch.stack(grads).contiguous()
        dist.all_reduce(summed)
        return summed[dist.get_rank()]
