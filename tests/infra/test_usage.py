"""The leak check's measures see an open file, a child process and retained memory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from infra.usage import Usage, growth, process_usage


def test_an_open_file_a_child_and_memory_are_counted(tmp_path: Path) -> None:
    before = process_usage(settle_s=2)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    held = (tmp_path / "held").open("w")
    ballast = bytearray(64 * 2**20)
    ballast[::4096] = b"x" * len(ballast[::4096])  # touch every page so it is resident
    try:
        during = process_usage(settle_s=2)
    finally:
        held.close()
        child.kill()
        child.wait()
    assert during.fds >= before.fds + 1
    assert during.processes == before.processes + 1
    assert during.rss_mb >= before.rss_mb + 60
    del ballast


def test_growth_is_measured_after_the_warm_up_run() -> None:
    samples = [Usage(50, 9, 900.0), Usage(40, 4, 700.0), Usage(41, 4, 690.0), Usage(44, 5, 720.5)]
    assert growth(samples) == {"fds": 4, "processes": 1, "rss_mb": 20.5}
    with pytest.raises(ValueError, match="at least 3 samples"):
        growth(samples[:2])
