"""Cluster mode: the main flow on a multi-node cluster, with nothing on a shared local disk.

The cluster is ``tests.infra.local_cluster``: every server a process on 127.0.0.1 (moto's S3,
MLflow proxying artifacts to it, Prefect, Dask with two workers, a Ray head and nodes A and B,
B with the custom ``accelerator`` resource). Two "workers" run ``shoal run`` as processes with
their own working directory and ``SHOAL_HOME``, configured by environment variables alone
(``SHOAL_STORAGE_URI=s3://shoal/state``); so do a ``prefect worker`` of a process work pool and
the ``shoal sweep`` command.

Shown: a run keeps its inputs, outputs, checkpoints, cached results, locks and MLflow artifacts
on S3 and nothing durable in its home; its two training workers ran on two nodes and the cluster
stage on the accelerator's node; a second run for a taken location is refused (exit code 4);
SIGKILL of a training node's raylet mid-training resumes from the checkpoint on S3 (a new node
replaces it, as an autoscaler would) and gives the uninterrupted run's clusters; a run killed on
one worker is finished by the other worker, whose home differs, reusing the cached ingest; the
retrain deployment, registered by ``shoal deploy`` and triggered by ``prefect deployment run``,
completes on the process worker with inputs and outputs on S3 and no file in the worker's home;
an 8-trial sweep, each trial an MLflow child run on the server, trains on both nodes.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import s3fs
import yaml
from mlflow.tracking import MlflowClient

from tests.flows.shoal_process import finish
from tests.flows.tiny import tiny_settings
from tests.infra.local_cluster import (
    BIN,
    BUCKET,
    STATE,
    local_cluster,
    prefect_worker,
    shoal,
    shoal_run,
)
from tests.infra.s3_server import list_keys
from tests.servers import TERMINAL

pytest.importorskip("moto.server")

pytestmark = [pytest.mark.soak, pytest.mark.timeout(5400)]

EPOCHS = 10
CONFIG: dict[str, Any] = {
    "ingest": {"partitions": 2},
    "pretrain": {
        "epochs": EPOCHS,
        "batch_size": 32,  # ~40 steps an epoch: a kill lands inside the training
        "max_train_sequences": 1500,
        "num_workers": 2,
        "patience": 10,
        "encoder": {"hidden_size": 16, "embedding_dim": 8, "token_dim": 8, "time_dim": 8},
    },
    "cluster": {"min_cluster_size": 15, "min_samples": 5},
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[dict[str, Any]]:
    with local_cluster(n_transactions=1500, config=CONFIG) as running:
        yield running


def mlflow_run(cluster: dict[str, Any], output: str, status: str = "FINISHED") -> Any:
    """Return the one MLflow run at ``output`` with ``status``."""
    client = MlflowClient(cluster["env"]["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("shoal").experiment_id
    runs = client.search_runs(
        [experiment],
        f"tags.`shoal.output` = '{STATE}/runs/{output}' and attributes.status = '{status}'",
    )
    assert len(runs) == 1, [r.info for r in runs]
    return runs[0]


def training_runs() -> set[str]:
    """Name the Ray Train runs stored on S3."""
    return {
        posixpath.basename(p)
        for p in s3fs.S3FileSystem().glob(f"{BUCKET}/state/ray_results/pretrain-*")
    }


def wait_for_epoch(
    cluster: dict[str, Any], output: str, process: subprocess.Popen, log: Path
) -> None:
    """Return once the run at ``output`` has logged its second epoch.

    The first epoch's checkpoint is then on S3: each epoch logs its losses, then reports it.
    """
    client = MlflowClient(cluster["env"]["MLFLOW_TRACKING_URI"])
    deadline = time.monotonic() + 1200
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-5000:]
        with contextlib.suppress(AssertionError, AttributeError):
            run = mlflow_run(cluster, output, "RUNNING")
            if len(client.get_metric_history(run.info.run_id, "pretrain.val_loss")) >= 2:
                return
        time.sleep(0.5)
    raise AssertionError("no second epoch within 20 minutes\n" + log.read_text()[-5000:])


def local_files(home: Path, failed_runs: bool = False) -> list[str]:
    """List the files a run left under its ``SHOAL_HOME``; none is allowed.

    ``PREFECT_HOME`` lies under it (``prefect/``), so a result that Prefect stored locally
    instead of on S3 shows here too. With ``failed_runs``, the records of failed flow runs
    (one refused a taken location) are left out: Prefect writes a failed flow run's exception
    to the flow's result storage, still the local default (``prefect/storage/<uuid>``), and no
    later run reads it.
    """
    from prefect.serializers import PickleSerializer

    def failure_record(path: Path) -> bool:
        if not failed_runs or path.parent != home / "prefect" / "storage":
            return False
        return isinstance(PickleSerializer().loads(path.read_bytes()), BaseException)

    files = [p for p in home.rglob("*") if p.is_file() and not failure_record(p)]
    return sorted(str(p.relative_to(home)) for p in files)


def clusters(output: str) -> pd.DataFrame:
    """Read the published clusters of ``output``."""
    return pd.read_parquet(f"{STATE}/runs/{output}/clusters.parquet")


def node_id(node: Any) -> str:
    """Return the Ray node id of a ``ray.cluster_utils`` node."""
    return str(node.node_id)


def test_a_run_on_the_cluster_keeps_its_state_on_s3(cluster: dict[str, Any]) -> None:
    process, log = shoal_run(cluster, "worker-1", "reference")
    finish(process, log, timeout_s=1500)

    keys = list_keys(cluster["aws"], BUCKET)
    assert "state/runs/reference/summary.json" in keys
    for prefix in ("state/ray_results/pretrain-", "state/prefect-results/", "mlartifacts/"):
        assert any(k.startswith(prefix) for k in keys), prefix
    assert not any(k.startswith("state/locks/") for k in keys), "released"
    home = cluster["tmp"] / "worker-1" / "home"
    assert local_files(home) == [], "nothing durable under SHOAL_HOME"

    tags = mlflow_run(cluster, "reference").data.tags
    nodes = cluster["nodes"]
    trained_on = {tags["shoal.pretrain.node.0"], tags["shoal.pretrain.node.1"]}
    assert trained_on == {node_id(nodes["a"]), node_id(nodes["b"])}, "one worker on each node"
    assert tags["shoal.cluster.node"] == node_id(nodes["b"]), "pHDBSCAN where the accelerator is"
    summary = json.loads(s3fs.S3FileSystem().cat(f"{BUCKET}/state/runs/reference/summary.json"))
    assert summary["output"] == f"{STATE}/runs/reference"


def wait_for_line(text: str, process: subprocess.Popen, log: Path) -> None:
    """Wait until ``text`` appears in the log of the live ``process``."""
    deadline = time.monotonic() + 900
    while text not in log.read_text():
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-5000:]
        time.sleep(1)


def test_a_lost_node_resumes_from_s3_and_a_taken_location_is_refused(
    cluster: dict[str, Any],
) -> None:
    before = training_runs()
    process, log = shoal_run(cluster, "worker-1", "lost-node")
    wait_for_line(f"writes to {STATE}/runs/lost-node", process, log)  # it holds the location
    contender, contender_log = shoal_run(cluster, "worker-2", "lost-node")
    wait_for_epoch(cluster, "lost-node", process, log)

    node = cluster["nodes"]["a"]  # a training node, not the accelerator
    (raylet,) = node.all_processes["raylet"]
    os.kill(raylet.process.pid, signal.SIGKILL)
    cluster["ray"].remove_node(node, allow_graceful=False)
    cluster["nodes"]["c"] = cluster["ray"].add_node(
        num_cpus=1, object_store_memory=200 * 1024**2
    )  # the replacement an autoscaler would start
    assert contender.wait(900) == 4, contender_log.read_text()[-3000:]
    refusal = f"output location {STATE}/runs/lost-node is in use by pid {process.pid}"
    assert refusal in contender_log.read_text()
    finish(process, log, timeout_s=1500)

    tags = mlflow_run(cluster, "lost-node").data.tags
    assert tags["shoal.pretrain.run"] in training_runs() - before
    starts = json.loads(tags["shoal.pretrain.starts"])
    assert starts[0] == 0 and 1 <= starts[-1] < EPOCHS and len(starts) >= 2, starts
    pd.testing.assert_frame_equal(clusters("lost-node"), clusters("reference"))


def test_a_killed_run_is_finished_by_another_worker_reusing_the_cached_ingest(
    cluster: dict[str, Any],
) -> None:
    before = training_runs()
    process, log = shoal_run(cluster, "worker-1", "handover")
    wait_for_epoch(cluster, "handover", process, log)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()

    lease = float(cluster["env"]["SHOAL_LOCK_LEASE_S"])
    deadline = time.monotonic() + 600
    while True:  # the dead worker's lease must run out first: until then it is refused
        rerun, rerun_log = shoal_run(cluster, "worker-2", "handover")
        code = rerun.wait(1500)
        if code != 4:
            break
        assert time.monotonic() < deadline, rerun_log.read_text()[-3000:]
        time.sleep(lease / 2)
    assert code == 0, rerun_log.read_text()[-5000:]

    tags = mlflow_run(cluster, "handover").data.tags
    assert tags["shoal.ingest.reused"] == "True", "the first worker's ingest, from S3"
    assert tags["shoal.pretrain.run"] in training_runs() - before
    starts = json.loads(tags["shoal.pretrain.starts"])
    assert starts[0] == 0 and starts[-1] >= 1, starts
    assert mlflow_run(cluster, "handover", "FAILED").data.tags["shoal.abandoned"]
    pd.testing.assert_frame_equal(clusters("handover"), clusters("reference"))
    assert local_files(cluster["tmp"] / "worker-2" / "home", failed_runs=True) == []


def worker_nodes(cluster: dict[str, Any]) -> set[str]:
    """Return the Ray node ids of the live worker nodes (the head runs no training)."""
    return {node_id(node) for node in cluster["ray"].worker_nodes}


def test_a_retrain_deployment_runs_on_a_process_worker_with_nothing_local(
    cluster: dict[str, Any],
) -> None:
    env, api, pool = cluster["env"], cluster["env"]["PREFECT_API_URL"], "soak"
    before = training_runs()
    inputs = {"SHOAL_EVENTS": cluster["events"], "SHOAL_TRANSACTIONS": cluster["transactions"]}
    deploy = ["deploy", "--pool", pool, "--deployment", "retrain"]
    finish(*shoal(cluster, "operator", deploy, "deploy", **inputs), timeout_s=300)
    parameters = {
        "output": f"{STATE}/runs/retrain",
        "window_hours": 24 * 365,  # the whole generated shop
        "params": tiny_settings(sequences=500, workers=2),
        "champion": {"gates": {"max_noise_share": 1.0}},
    }
    with prefect_worker(cluster, "prefect-worker", pool) as worker_log:
        command = [BIN / "prefect", "deployment", "run", "retrain/retrain"]
        triggered = subprocess.run(
            [str(c) for c in [*command, "--params", json.dumps(parameters)]],
            cwd=cluster["tmp"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert triggered.returncode == 0, triggered.stdout + triggered.stderr
        created = re.search(r"UUID: ([0-9a-f-]{36})", triggered.stdout)
        assert created, triggered.stdout
        flow_run_id = created.group(1)
        deadline = time.monotonic() + 1500
        while True:
            run = httpx.get(f"{api}/flow_runs/{flow_run_id}", timeout=30).json()
            if run["state"]["type"] in TERMINAL or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert run["state"]["type"] == "COMPLETED", worker_log.read_text()[-5000:]
    assert run["work_pool_name"] == pool and run["parameters"]["output"] == parameters["output"]

    mlflow = mlflow_run(cluster, "retrain")
    assert mlflow.data.params["events"] == cluster["events"]  # inputs from S3, via prefect.yaml
    assert mlflow.data.params["transactions"] == cluster["transactions"]
    assert mlflow.data.tags["shoal.pretrain.run"] in training_runs() - before
    keys = list_keys(cluster["aws"], BUCKET)
    assert {"state/runs/retrain/summary.json", "state/runs/retrain/clusters.parquet"} <= set(keys)
    artifacts = f"mlartifacts/{mlflow.info.experiment_id}/{mlflow.info.run_id}/artifacts/"
    assert any(k.startswith(artifacts + "champion/") for k in keys), "through the server, to S3"
    champion = MlflowClient(env["MLFLOW_TRACKING_URI"]).get_model_version_by_alias(
        "shoal-encoder", "champion"
    )
    assert champion.run_id == mlflow.info.run_id, "the retrain flow ran to its last step"
    assert local_files(cluster["tmp"] / "prefect-worker" / "home") == []
    assert local_files(cluster["tmp"] / "operator" / "home") == []


SWEEP_SPACE = {
    "num_samples": 8,
    "max_concurrent": 2,  # one 1-CPU training worker each: two at once fill nodes a and b
    "workers_per_trial": 1,
    "seed": 1,
    "space": {
        "pretrain.encoder.embedding_dim": {"choice": [4, 8]},
        "features.embedding_weight": {"uniform": [0.5, 2.0]},
        "cluster.min_cluster_size": {"choice": [10, 20]},
    },
}


def test_an_eight_trial_sweep_trains_on_both_nodes(cluster: dict[str, Any]) -> None:
    space, base = cluster["tmp"] / "space.yaml", cluster["tmp"] / "sweep-base.yaml"
    space.write_text(yaml.safe_dump(SWEEP_SPACE))
    base.write_text(yaml.safe_dump(tiny_settings(sequences=400)))
    args = ["sweep", "--events", cluster["events"], "--transactions", cluster["transactions"]]
    args += ["--space", str(space), "--config", str(base), "--output", f"{STATE}/runs/sweep"]
    process, log = shoal(cluster, "worker-3", args, "sweep")
    finish(process, log, timeout_s=1500)

    parent = mlflow_run(cluster, "sweep")
    client = MlflowClient(cluster["env"]["MLFLOW_TRACKING_URI"])
    trials = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(trials) == 8 and {t.info.status for t in trials} == {"FINISHED"}
    trained_on = {t.data.tags["shoal.pretrain.node.0"] for t in trials}
    names = {node_id(node): name for name, node in cluster["nodes"].items()}
    for t in trials:  # shown with -rP: where each trial's driver and training worker ran
        where = {k: names.get(v, "head") for k, v in t.data.tags.items() if ".node" in k}
        print(t.info.run_name, where)
    assert trained_on == worker_nodes(cluster), "trials placed on every node"
    head = node_id(cluster["ray"].head_node)
    assert {t.data.tags["shoal.sweep.node"] for t in trials} <= worker_nodes(cluster) | {head}
    keys = list_keys(cluster["aws"], BUCKET, f"state/ray_results/sweep-{parent.info.run_id}/")
    assert keys, "Tune's trials on S3"
    assert "state/runs/sweep/best_config.yaml" in list_keys(cluster["aws"], BUCKET, "state/runs/")
    assert local_files(cluster["tmp"] / "worker-3" / "home") == []
