"""``shoal ingest`` on the real engines: counts, exit codes, and reuse through Prefect's cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from catalog.synthetic import generate_shop
from flows.cli import app

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness", "output_root")]


def _ingest(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["ingest", *args])
    return result.exit_code, result.output


def test_second_ingest_of_unchanged_input_reuses_outputs(tmp_path: Path) -> None:
    data = generate_shop(tmp_path / "shop", n_transactions=300, seed=1)
    out = tmp_path / "out"
    args = ["--events", str(data.events), "--transactions", str(data.transactions)]
    args += ["--output", str(out)]

    code, first = _ingest(*args)
    assert code == 0, first
    assert "reused" not in first
    lineage = json.loads((out / "lineage.json").read_text())
    assert set(lineage["inputs"]) == {"events", "transactions"}
    assert lineage["code_version"]["ingest_source"]
    stamp = (out / "sequences.parquet").stat().st_mtime_ns

    code, second = _ingest(*args)
    assert code == 0, second
    assert "reused the cached outputs" in second
    assert (out / "sequences.parquet").stat().st_mtime_ns == stamp, "nothing rewritten"

    # Outputs deleted: the cache must not point at files that are gone.
    shutil.rmtree(out)
    code, third = _ingest(*args)
    assert code == 0, third
    assert "reused" not in third
    assert (out / "sequences.parquet").exists()

    # A window is a different parameter: new outputs, rows outside it counted.
    ts = pd.read_parquet(data.transactions)["ts"]
    middle = str(ts.sort_values().iloc[len(ts) // 2])
    code, windowed = _ingest(*args, "--start", middle)
    assert code == 0, windowed
    assert "reused" not in windowed
    counts = json.loads((out / "ingest_counts.json").read_text())
    assert counts["transactions"]["outside_window"] > 0
    for c in counts.values():
        assert c["rows_in"] == c["accepted"] + c["quarantined"] + c["outside_window"]


def test_fatal_defect_exits_2_and_names_the_file(tmp_path: Path) -> None:
    data = generate_shop(tmp_path / "shop", n_transactions=200, seed=2)
    bad = tmp_path / "events.csv"
    bad.write_text("txn_id,ts\nt0,2026-01-01T00:00:00Z\n")
    code, output = _ingest(
        "--events",
        str(bad),
        "--transactions",
        str(data.transactions),
        "--output",
        str(tmp_path / "out"),
    )
    assert code == 2
    assert "events.csv" in output and "'event'" in output
    assert not (tmp_path / "out").exists()
