"""Render a page in Debian's headless chromium: its DOM, its script errors, a screenshot."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

needs_chromium = pytest.mark.skipif(
    shutil.which("chromium") is None, reason="needs Debian's chromium"
)
BROWSER = ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
           "--enable-logging=stderr", "--v=0"]  # fmt: skip


def render(page: Path, screenshot: Path) -> tuple[str, str, np.ndarray]:
    """``(dom, browser log, screenshot pixels)`` of ``page`` at 1280 x 1600."""
    dom = subprocess.run(
        [*BROWSER, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert dom.returncode == 0, dom.stderr
    subprocess.run(
        [*BROWSER, f"--screenshot={screenshot}", "--window-size=1280,1600", page.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    return dom.stdout, dom.stderr, plt.imread(screenshot)
