"""Hand the memory a finished stage freed back to the operating system.

A flow's stages run one after another in one process. glibc keeps what a stage frees in its
allocator's arenas (threads each get their own), so the process's resident size after a stage
stays near that stage's peak, and the next stage's peak lands on top of it: after explain's
rules and membership vectors on the 1M run, 1.38 GB stayed resident of a 2.02 GB peak, 0.75 GB
once trimmed. ``malloc_trim(0)`` returns the free pages of every arena.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any


@functools.cache
def _trim() -> Any:
    """glibc's ``malloc_trim``, or None on another C library."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def release_freed_memory(*_: object) -> None:
    """Return freed heap pages to the system: a Prefect state hook (task, run, state ignored)."""
    trim = _trim()
    if trim is not None:
        trim(0)


#: A stage task's hooks: ``@task(name=..., **STAGE_HOOKS)`` releases its memory however it ends.
STAGE_HOOKS: dict[str, Any] = {
    "on_completion": [release_freed_memory],
    "on_failure": [release_freed_memory],
}
