"""Flows at once: apart on different locations; on the same one the second refuses at once."""

from __future__ import annotations

import socket
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from catalog.synthetic import generate_shop
from flows.cli import app
from infra.locks import OUTPUT_TAG
from infra.tracking import configure
from tests.flows.shoal_process import finish, hold_elsewhere, shoal_env, start_shoal

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def test_two_ingests_at_once_on_different_data_stay_apart(tmp_path: Path) -> None:
    home, root = tmp_path / "home", tmp_path / "outputs"
    env = shoal_env(home, root)
    sizes = {"a": 300, "b": 400}
    processes = {}
    for name, n in sizes.items():
        data = generate_shop(tmp_path / f"data_{name}", n_transactions=n, seed=len(name) + n)
        args = ["ingest", "--events", str(data.events), "--transactions", str(data.transactions)]
        log = tmp_path / f"{name}.log"
        processes[name] = (start_shoal([*args, "--output", name], env, log), log)
    for process, log in processes.values():
        finish(process, log)

    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("shoal").experiment_id
    runs = client.search_runs([experiment])
    assert sorted(r.data.tags[OUTPUT_TAG] for r in runs) == [str(root / n) for n in sizes]
    assert {r.info.status for r in runs} == {"FINISHED"}
    ids = {n: set(pd.read_parquet(root / n / "transactions.parquet")["txn_id"]) for n in sizes}
    assert [len(ids[n]) for n in sizes] == list(sizes.values())
    for run in runs:
        name = Path(run.data.tags[OUTPUT_TAG]).name
        assert run.data.params["output"] == str(root / name)


@pytest.mark.parametrize("command", ["run", "ingest"])
def test_a_second_flow_on_a_held_location_refuses_naming_the_holder(
    command: str, shoal_home: Path, output_root: Path
) -> None:
    data = generate_shop(output_root / "data", n_transactions=200, seed=1)
    location = output_root / "shared"
    holder = hold_elsewhere(str(location), shoal_home, "r-first")
    try:
        result = CliRunner().invoke(
            app,
            [command, "--events", str(data.events), "--transactions", str(data.transactions),
             "--output", "shared"],
        )  # fmt: skip
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 4, result.output
    said = " ".join(result.output.split())
    for part in ("output refused", str(location), f"pid {holder.pid}", socket.gethostname()):
        assert part in said
    assert "r-first" in said
    assert not location.exists() and not (output_root / ".shared.staging").exists()
    runs = MlflowClient().search_runs(
        [configure()], filter_string=f"tags.`{OUTPUT_TAG}` = '{location}'"
    )
    assert runs == [], "a refused flow opens no MLflow run"
