"""Flows write only under the output root: tests that name an output set the root to tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.settings import get_settings


@pytest.fixture
def output_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``SHOAL_OUTPUT_ROOT`` = this test's ``tmp_path`` (settings are cached: cleared both ways)."""
    monkeypatch.setenv("SHOAL_OUTPUT_ROOT", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    monkeypatch.delenv("SHOAL_OUTPUT_ROOT")
    get_settings.cache_clear()
