"""SIGKILL ``shoal run`` during pretraining, run the same command again: it resumes.

Three ``python -m flows.cli run`` processes share one ``SHOAL_HOME`` and the test session's
Prefect server (as processes of a deployment would), each with its own local Ray: a run killed
(its process group: the flow's process and its Ray) once its first checkpoint is recorded, an
uninterrupted reference run, and the rerun of the killed command. The killed command and its
rerun give no ``--output``: the rerun must find the default location the killed run chose.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from filelock import FileLock
from mlflow.tracking import MlflowClient

from catalog.synthetic import generate_shop
from tasks.training_identity import CHECKPOINT_SNAPSHOT
from tests.flows.shoal_process import finish, shoal_env, start_shoal

pytestmark = [pytest.mark.soak, pytest.mark.usefixtures("prefect_harness")]

EPOCHS = 6
# Dropout stays on: the resumed run must restore the random streams to reproduce the reference.
CONFIG: dict[str, Any] = {
    "pretrain": {
        "epochs": EPOCHS,
        "batch_size": 64,  # ~20 steps an epoch: the kill lands inside the training
        "max_train_sequences": 1500,
        "num_workers": 1,
        "patience": 10,
        "encoder": {"hidden_size": 16, "embedding_dim": 8, "token_dim": 8, "time_dim": 8},
    },
    "cluster": {"min_cluster_size": 15, "min_samples": 5},
}


def shoal_run(
    data: Any, output: str | None, config: Path, env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    args = ["run", "--events", str(data.events), "--transactions", str(data.transactions)]
    args += ["--config", str(config)]
    return start_shoal([*args, "--output", output] if output else args, env, log)


def wait_for_first_checkpoint(home: Path, process: subprocess.Popen[bytes], log: Path) -> Path:
    """The training run whose snapshot first lists a checkpoint (Ray has recorded it)."""
    deadline = time.monotonic() + 420
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-4000:]
        for snapshot in (home / "ray_results").glob(f"pretrain-*/{CHECKPOINT_SNAPSHOT}"):
            try:
                if json.loads(snapshot.read_text())["checkpoint_results"]:
                    return snapshot.parent
            except (OSError, ValueError):
                pass  # being written
        time.sleep(0.1)
    raise AssertionError("no checkpoint within 7 minutes\n" + log.read_text()[-4000:])


def runs_at(client: MlflowClient, location: Path) -> list[Any]:
    experiment = client.get_experiment_by_name("shoal")
    return client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`shoal.output` = '{location}'"
    )


def test_a_killed_run_resumes_and_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    data = generate_shop(tmp_path / "data", n_transactions=1500, seed=3)
    config = tmp_path / "params.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    home, root = tmp_path / "home", tmp_path / "outputs"
    root.mkdir()
    env = shoal_env(home, root)
    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")

    # The reference starts after the kill and overlaps with the rerun: two flows at once on
    # one output root and one MLflow store.
    killed_log, reference_log = tmp_path / "killed.log", tmp_path / "reference.log"
    killed = shoal_run(data, None, config, env, killed_log)
    training = wait_for_first_checkpoint(home, killed, killed_log)
    os.killpg(killed.pid, signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL
    (dead,) = client.search_runs([client.get_experiment_by_name("shoal").experiment_id])
    location = Path(dead.data.tags["shoal.output"])
    assert location == root / dead.info.run_id, "no --output: <output root>/<run id>"
    reference = shoal_run(data, "reference", config, env, reference_log)

    assert not location.exists(), "a killed run must leave nothing at the output location"
    staging = root / f".{location.name}.staging"
    assert (staging / "sequences.parquet").exists()
    assert [r.info.status for r in runs_at(client, location)] == ["RUNNING"]

    rerun_log = tmp_path / "rerun.log"
    rerun = shoal_run(data, None, config, env, rerun_log)
    finish(reference, reference_log)
    finish(rerun, rerun_log)

    runs = runs_at(client, location)
    assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED"], "the rerun came back"
    (finished,) = [r for r in runs if r.info.status == "FINISHED"]
    tags = finished.data.tags
    assert tags["shoal.command"] == dead.data.tags["shoal.command"]
    assert tags["shoal.ingest.reused"] == "True", "ingest finished before the kill: a cache hit"
    assert tags["shoal.pretrain.run"] == training.name, "the same Ray Train run, resumed"
    starts = json.loads(tags["shoal.pretrain.starts"])
    assert starts[0] == 0 and 1 <= starts[1] < EPOCHS and len(starts) == 2, starts
    steps = [m.step for m in client.get_metric_history(finished.info.run_id, "pretrain.val_loss")]
    assert sorted(steps) == list(range(EPOCHS)), "epochs of the killed process are logged too"

    for name in ("embeddings.parquet", "clusters.parquet"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(location / name), pd.read_parquet(root / "reference" / name)
        )
    summary = json.loads((location / "summary.json").read_text())
    assert summary["output"] == str(location) and summary["run_id"] == finished.info.run_id
    assert not staging.exists()

    locks = list((home / "locks").glob("*.lock"))
    assert locks and not list((home / "locks").glob("*.holder.json"))
    for lock in locks:
        with FileLock(lock, timeout=0):
            pass  # free: the killed holder's lock died with it
