"""Random-generator states as plain tensors, so a checkpoint can hold them.

A run resumed from a checkpoint reproduces the uninterrupted run only if dropout, augmentation
and the data loader's seeds draw the same numbers after the resume as they would have without
it. Tensors (not numpy arrays or tuples) keep ``torch.load(weights_only=True)`` usable.
"""

from __future__ import annotations

import math
import random

import numpy as np
import torch


def capture_rng() -> dict[str, torch.Tensor]:
    """The Python, numpy and torch (CPU and CUDA) generator states of this process.

    Examples
    --------
    >>> state = capture_rng(); a = torch.rand(3); restore_rng(state)
    >>> bool(torch.equal(a, torch.rand(3)))
    True
    """
    version, python, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": torch.tensor([version, *python], dtype=torch.int64),
        "python_gauss": torch.tensor(math.nan if gauss is None else gauss, dtype=torch.float64),
        "numpy": torch.tensor([*keys.tolist(), pos, has_gauss], dtype=torch.int64),
        "numpy_gauss": torch.tensor(cached, dtype=torch.float64),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    return state


def restore_rng(state: dict[str, torch.Tensor]) -> None:
    """Put back what ``capture_rng`` took."""
    python = state["python"].tolist()
    gauss = float(state["python_gauss"])
    random.setstate((python[0], tuple(python[1:]), None if math.isnan(gauss) else gauss))
    numpy = state["numpy"].tolist()
    keys = np.array(numpy[:-2], dtype=np.uint32)
    np.random.set_state(("MT19937", keys, numpy[-2], numpy[-1], float(state["numpy_gauss"])))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))
