"""Blocks of rows on a pool of threads: the numba loops that hold no GIL, on every core."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["map_row_blocks"]

_T = TypeVar("_T")

# Large enough that a block's call costs nothing next to its loop, small enough that two
# cores get several blocks each at 100k rows.
BLOCK_ROWS = 8_192


def cores() -> int:
    """CPUs this process may run on (its affinity where the platform tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def map_row_blocks(fn: Callable[[slice], _T], n: int, block_rows: int = BLOCK_ROWS) -> list[_T]:
    """``[fn(rows) for rows in blocks]`` over ``0 .. n - 1`` in blocks, one thread per core.

    Parameters
    ----------
    fn : callable
        Takes a ``slice`` of rows; should release the GIL (a ``nogil`` numba function), or
        the threads take turns.
    n : int
        Rows.
    block_rows : int
        Rows per block.

    Returns
    -------
    list
        ``fn``'s results in row order, whatever thread ran each block.
    """
    blocks = [slice(first, min(first + block_rows, n)) for first in range(0, n, block_rows)]
    if len(blocks) < 2:
        return [fn(rows) for rows in blocks]
    with ThreadPoolExecutor(min(cores(), len(blocks))) as pool:
        return list(pool.map(fn, blocks))
