"""Ties: ARI of each exact HDBSCAN* and of PHDBSCAN against hdbscan's default, on tie-heavy data.

hdbscan's default exact labels (``approx_min_span_tree=False``: Prim's above 60 dimensions,
Borůvka below) against each of hdbscan's exact algorithms, scikit-learn's and PHDBSCAN's
exact mode. With ``--other-cpu``, hdbscan's default and PHDBSCAN run again in a process whose
NumPy may not use the named CPU features (its unstable ``argsort`` then reorders tied rows
differently): that default against this one's, and that PHDBSCAN against that default.
Brackets: points whose label differs from the default's. Run from the repository root::

    .venv/bin/python benchmarks/phdbscan_ties.py --other-cpu "X86_V4 AVX512_ICL"
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits, load_wine
from sklearn.metrics import adjusted_rand_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ops.phdbscan import PHDBSCAN
from tests.ops.phdbscan.references import (
    aniso,
    default_labels,
    duplicated_rows,
    exact_references,
    label_map,
)

SETTINGS = {
    "mcs 25 ms 5": {"min_cluster_size": 25, "min_samples": 5},
    "mcs 5": {"min_cluster_size": 5},
    "mcs 15 ms 5": {"min_cluster_size": 15, "min_samples": 5},
    "leaf mcs 10": {"min_cluster_size": 10, "cluster_selection_method": "leaf"},
}
COLUMNS = ("generic", "prims_kd", "prims_ball", "boruvka_kd", "boruvka_ball", "sklearn")


DATA = {
    "digits": lambda: load_digits().data,
    "aniso": aniso,
    "duplicated rows": duplicated_rows,
    "wine": lambda: load_wine().data,
}


def _ours(X: np.ndarray, params: dict) -> np.ndarray:
    return PHDBSCAN(mode="exact", **params).fit(X).labels_


def _elsewhere(features: str) -> dict[str, np.ndarray]:
    """hdbscan's default and PHDBSCAN's labels for every case, from another process.

    That process's NumPy may not use ``features`` (``NPY_DISABLE_CPU_FEATURES``).
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "labels.npz"
        env = dict(os.environ, NPY_DISABLE_CPU_FEATURES=features)
        subprocess.run([sys.executable, __file__, "--labels-to", str(out)], env=env, check=True)
        with np.load(out) as saved:
            return dict(saved)


def _cell(default: np.ndarray, other: np.ndarray) -> str:
    mapping = label_map(other, default)
    off = int(np.sum(np.array([mapping[int(v)] for v in other]) != default))
    return f"{adjusted_rand_score(default, other):.4f} ({off})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--other-cpu", default=None, help="NPY_DISABLE_CPU_FEATURES value")
    parser.add_argument("--labels-to", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cases = [(d, s) for d in DATA for s in SETTINGS]
    if args.labels_to:  # child process of --other-cpu
        labels = {}
        for d, s in cases:
            labels[f"default|{d}|{s}"] = default_labels(DATA[d](), SETTINGS[s])
            labels[f"ours|{d}|{s}"] = _ours(DATA[d](), SETTINGS[s])
        np.savez(args.labels_to, **labels)
        return 0
    elsewhere = _elsewhere(args.other_cpu) if args.other_cpu else {}
    header = ["data, parameters", *COLUMNS, "PHDBSCAN"]
    header += ["default, other CPU", "PHDBSCAN vs default, other CPU"] if elsewhere else []
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for d, s in cases:
        X, params = DATA[d](), SETTINGS[s]
        default = default_labels(X, params)
        row = [_cell(default, ref) for ref in exact_references(X, params)]
        row.append(_cell(default, _ours(X, params)))
        if elsewhere:
            other_default = elsewhere[f"default|{d}|{s}"]
            row.append(_cell(default, other_default))
            row.append(_cell(other_default, elsewhere[f"ours|{d}|{s}"]))
        print(f"| {d}, {s} | " + " | ".join(row) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
