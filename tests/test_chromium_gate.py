"""The browser tests skip where chromium is missing, but fail under CI: never a silent pass."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BROWSER_TEST = """
from tests.chromium import needs_chromium

@needs_chromium
def test_in_a_browser(tmp_path):
    pass
"""


@pytest.mark.parametrize(("ci", "outcome"), [(None, "1 skipped"), ("true", "1 failed")])
def test_a_missing_browser_skips_only_outside_ci(
    tmp_path: Path, ci: str | None, outcome: str
) -> None:
    (tmp_path / "test_browser.py").write_text(BROWSER_TEST)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    # Only the interpreter's own directory on PATH: no chromium, wherever it is installed.
    env.update(PATH=str(Path(sys.executable).parent), PYTHONPATH=str(REPO))
    if ci:
        env["CI"] = ci
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert outcome in result.stdout, result.stdout + result.stderr
    if ci:
        assert "chromium is missing" in result.stdout
