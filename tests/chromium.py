"""Render a page in Debian's headless chromium: its DOM, its script errors, a screenshot.

Where ``chromium`` is missing the browser tests are skipped, except under CI (``CI`` set, as CI
services and ``.ci/run`` do): there a missing browser fails them, so a real-browser check
never passes without running.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pytest

MISSING = shutil.which("chromium") is None
BROWSER = ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
           "--enable-logging=stderr", "--v=0"]  # fmt: skip


def needs_chromium(test: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a browser test: skipped without chromium, failed without it under CI."""
    if not MISSING:
        return test
    if not os.environ.get("CI"):
        return pytest.mark.skip(reason="needs Debian's chromium (apt-get install chromium)")(test)

    @functools.wraps(test)
    def fails(*args: Any, **kwargs: Any) -> None:
        pytest.fail("CI is set and chromium is missing: `make test` installs it (apt-get)")

    return fails


def dom_of(url: str, budget_ms: int = 20_000) -> str:
    """The DOM of ``url`` once its scripts ran for ``budget_ms`` of virtual time (a web app)."""
    dom = subprocess.run(
        [*BROWSER, "--window-size=1400,2400", f"--virtual-time-budget={budget_ms}",
         "--dump-dom", url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert dom.returncode == 0, dom.stderr
    return dom.stdout


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
