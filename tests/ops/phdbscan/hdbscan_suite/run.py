"""Run hdbscan's own test modules against PHDBSCAN and print what passes.

hdbscan's wheel installs its tests (``hdbscan/tests``, BSD-3-Clause, (c) Leland McInnes and
contributors), so nothing is downloaded or copied: pytest imports them from the installed
package with :mod:`adapter` loaded first. Not part of ``make test``: several of hdbscan's
tests cover what PHDBSCAN does not do (precomputed and sparse distances, other metrics);
docs/phdbscan.md lists them with the reason.

Usage::

    PYTHONPATH=. .venv/bin/python tests/ops/phdbscan/hdbscan_suite/run.py [pytest args]
"""

from __future__ import annotations

import sys

import pytest

MODULES = ["hdbscan.tests.test_hdbscan", "hdbscan.tests.test_prediction_utils"]


def main(argv: list[str]) -> int:
    """Run the modules; return pytest's exit code."""
    args = [
        "--pyargs",
        *MODULES,
        "-p",
        "tests.ops.phdbscan.hdbscan_suite.adapter",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rfE",
        "--override-ini=addopts=",
        *argv,
    ]
    return int(pytest.main(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
