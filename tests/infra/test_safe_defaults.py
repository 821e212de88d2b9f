"""Safe defaults: nothing untrusted is unpickled, and servers Shoal starts bind to loopback.

(That the local Ray really listens on loopback only is checked on the live Ray of the flow
tests, in ``tests/flows/test_leaks.py``.)
"""

from __future__ import annotations

import ast
import os
import pickle
import re
from functools import lru_cache
from pathlib import Path

import pytest
import torch

from tasks.pretrain_worker import STATE_FILE, load_encoder

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("flows", "tasks", "ops", "infra", "catalog", "benchmarks")


@lru_cache(maxsize=1)
def _trees() -> tuple[tuple[Path, ast.Module], ...]:
    """Shoal's own modules, parsed once for all the checks."""
    paths = sorted(p for package in PACKAGES for p in (REPO / package).rglob("*.py"))
    return tuple((path, ast.parse(path.read_text(), str(path))) for path in paths)


def _calls(name: str) -> list[tuple[Path, ast.Call]]:
    """Every call of ``<module>.<name>`` (e.g. ``torch.load``) in Shoal's own code."""
    module, attr = name.split(".")
    found = []
    for path, tree in _trees():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == attr
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == module
            ):
                found.append((path, node))
    return found


def test_every_torch_load_is_weights_only() -> None:
    calls = _calls("torch.load")
    assert calls, "expected the checkpoint loaders"
    for path, call in calls:
        flags = {k.arg: k.value for k in call.keywords}
        weights_only = flags.get("weights_only")
        assert isinstance(weights_only, ast.Constant) and weights_only.value is True, (
            f"{path.relative_to(REPO)}:{call.lineno}: torch.load without weights_only=True"
        )


@pytest.mark.parametrize("name", ["pickle.load", "pickle.loads", "joblib.load", "dill.load"])
def test_no_raw_unpickling(name: str) -> None:
    where = [f"{p.relative_to(REPO)}:{c.lineno}" for p, c in _calls(name)]
    assert not where, f"{name} in {where}: use MLflow's loader or weights_only torch.load"


class Payload:
    """A pickle that runs code when loaded: it creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.makedirs, (str(self.marker),))


def test_a_malicious_checkpoint_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    torch.save({"objective": {}, "payload": Payload(marker)}, checkpoint / STATE_FILE)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load_encoder(str(checkpoint), {})
    assert not marker.exists()


def test_servers_started_by_shoal_bind_to_loopback() -> None:
    makefile = (REPO / "Makefile").read_text()
    ui = [line for line in makefile.splitlines() if "mlflow ui" in line or "mlflow server" in line]
    assert ui and all("--host 127.0.0.1" in line for line in ui), ui
    source = "\n".join(
        p.read_text() for package in PACKAGES for p in (REPO / package).rglob("*.py")
    )
    assert not re.search(r"[\"']0\.0\.0\.0[\"']", source), "a server bound to every interface"
    if os.environ.get("RAY_ADDRESS", "local") == "local":  # set by infra.settings on import
        assert os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") == "0"
