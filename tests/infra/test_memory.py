"""Memory a stage freed goes back to the system when the stage ends."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from infra.memory import STAGE_HOOKS, _trim, release_freed_memory
from tasks.cluster import cluster
from tasks.explain import explain


def _rss() -> int:
    """Resident bytes of the test process (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(_trim() is None, reason="glibc's malloc_trim only")
def test_freed_heap_pages_are_returned() -> None:
    blocks = [bytearray(2048) for _ in range(150_000)]  # ~300 MB of small heap blocks
    kept = blocks[::100]  # one block in a hundred pins its neighbourhood
    del blocks
    before = _rss()
    release_freed_memory(None, None, None)
    after = _rss()
    assert before - after > 100 * 2**20, (before, after)
    assert len(kept) == 1500


def test_stage_tasks_release_memory_however_they_end() -> None:
    for stage in (cluster, explain):
        assert release_freed_memory in stage.on_completion_hooks
        assert release_freed_memory in stage.on_failure_hooks
    assert set(STAGE_HOOKS) == {"on_completion", "on_failure"}
