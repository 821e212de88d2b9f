"""Shoal against real servers on 127.0.0.1, each a subprocess of this test.

``prefect server start``, ``mlflow server`` (SQLite, proxied artifacts), ``ray start --head``
and ``shoal serve`` of the retrain deployment; a run is triggered through Prefect's REST API
and must complete with its MLflow run finished and the champion alias set on the server.

Every process is started in its own session and its whole process group is stopped in
teardown: ``ray stop`` would also stop other Ray instances of this user on the machine.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow.tracking import MlflowClient

from catalog.synthetic import generate_shop
from tests.flows.tiny import tiny_settings
from tests.ports import free_port
from tests.servers import NO_TELEMETRY, TERMINAL, http_ok, stop, wait_for

# Four servers and a flow run: minutes on a busy 2-core machine, past the default 600 s.
pytestmark = [pytest.mark.soak, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Any]]:
    tmp = Path(tempfile.mkdtemp(prefix="shoal-srv-"))  # short: Ray's socket paths are limited
    ports = {k: free_port() for k in ("prefect", "mlflow", "ray", "ray_node", "ray_obj")}
    data = generate_shop(tmp / "data", n_transactions=1200, seed=5)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),  # the checkout under test, wherever the package is installed
        "PREFECT_HOME": str(tmp / "prefect"),
        "PREFECT_API_URL": f"http://127.0.0.1:{ports['prefect']}/api",
        **NO_TELEMETRY,
        "PREFECT_UI_ENABLED": "false",
        # Ray otherwise swaps 127.0.0.1 in RAY_ADDRESS for the host's address, where the head
        # (bound to loopback) does not listen.
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        # Ray 2.5x+ clusters may demand a token; this cluster's own, shared with its clients.
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "OMP_WAIT_POLICY": "PASSIVE",
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{ports['mlflow']}",
        "RAY_ADDRESS": f"127.0.0.1:{ports['ray']}",
        "SHOAL_HOME": str(tmp / "home"),
        "SHOAL_EVENTS": str(data.events),
        "SHOAL_TRANSACTIONS": str(data.transactions),
    }
    commands = {
        "prefect": [
            BIN / "prefect", "server", "start", "--host", "127.0.0.1",
            "--port", str(ports["prefect"]), "--no-ui", "--analytics-off",
        ],
        "mlflow": [
            BIN / "mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}",
            "--artifacts-destination", (tmp / "mlartifacts").as_uri(),
            "--host", "127.0.0.1", "--port", str(ports["mlflow"]), "--workers", "1",
        ],
        "ray": [
            BIN / "ray", "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
            "--port", str(ports["ray"]), "--node-manager-port", str(ports["ray_node"]),
            "--object-manager-port", str(ports["ray_obj"]), "--include-dashboard", "false",
            "--num-cpus", "2", "--temp-dir", str(tmp / "ray"), "--disable-usage-stats",
        ],
    }  # fmt: skip
    procs: list[tuple[str, subprocess.Popen, Path]] = []

    def launch(name: str, command: list) -> None:
        log = tmp / f"{name}.log"
        proc = subprocess.Popen(
            [str(c) for c in command],
            cwd=REPO,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs.append((name, proc, log))

    try:
        for name, command in commands.items():
            launch(name, command)
        wait_for(http_ok(f"{env['PREFECT_API_URL']}/health"), "Prefect server", 240, procs)
        wait_for(http_ok(f"{env['MLFLOW_TRACKING_URI']}/health"), "MLflow server", 180, procs)
        ray_log = tmp / "ray.log"
        wait_for(lambda: b"Ray runtime started" in ray_log.read_bytes(), "Ray head", 180, procs)
        launch("serve", [BIN / "shoal", "serve", "--deployment", "retrain"])
        api = env["PREFECT_API_URL"]
        wait_for(
            http_ok(f"{api}/deployments/name/retrain/retrain"), "retrain deployment", 240, procs
        )
        yield {"env": env, "api": api, "procs": procs, "data": data}
    finally:
        for _, proc, _ in reversed(procs):
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def test_retrain_deployment_runs_on_real_servers(servers: dict[str, Any]) -> None:
    api, env, procs = servers["api"], servers["env"], servers["procs"]
    deployment = httpx.get(f"{api}/deployments/name/retrain/retrain", timeout=30).json()
    crons = [s["schedule"]["cron"] for s in deployment["schedules"] if s["active"]]
    assert crons == ["0 3 * * *"], deployment["schedules"]
    assert deployment["parameters"]["events"] == str(servers["data"].events)
    assert deployment["enforce_parameter_schema"]

    bad = {"parameters": {"window_hours": -1}}
    refused = httpx.post(f"{api}/deployments/{deployment['id']}/create_flow_run", json=bad)
    assert refused.status_code == 409 and "window_hours" in refused.text

    parameters = {
        "params": tiny_settings(sequences=400),
        "champion": {"gates": {"max_noise_share": 1.0}},
    }
    created = httpx.post(
        f"{api}/deployments/{deployment['id']}/create_flow_run",
        json={"parameters": parameters},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    state: dict[str, Any] = {}

    def finished() -> bool:
        state.update(httpx.get(f"{api}/flow_runs/{run_id}", timeout=30).json()["state"])
        return state["type"] in TERMINAL

    wait_for(finished, "the retrain flow run", 480, procs)
    serve_log = next(log for name, _, log in procs if name == "serve")
    assert state["type"] == "COMPLETED", f"{state}\n{serve_log.read_text()[-4000:]}"

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs(
        [client.get_experiment_by_name("shoal").experiment_id],
        "tags.`shoal.flow` = 'fraud_clustering'",
    )
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.tags["shoal.champion"] == "promoted"
    champion = client.get_model_version_by_alias("shoal-encoder", "champion")
    assert champion.run_id == runs[0].info.run_id
    artifacts = {a.path for a in client.list_artifacts(runs[0].info.run_id, "champion")}
    assert "champion/decision.json" in artifacts


def test_shoal_deploy_registers_deployments_on_a_process_pool(servers: dict[str, Any]) -> None:
    api = servers["api"]
    command = [BIN / "shoal", "deploy", "--pool", "shoal-test", "--deployment", "fraud_clustering"]
    done = subprocess.run(
        [str(c) for c in command], cwd=REPO, env=servers["env"], capture_output=True, timeout=300
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    deployment = httpx.get(f"{api}/deployments/name/fraud_clustering/fraud_clustering").json()
    assert deployment["work_pool_name"] == "shoal-test"
    assert deployment["entrypoint"] == "flows.fraud_clustering.fraud_clustering"
    assert not deployment["schedules"], "fraud_clustering runs on demand"
    assert httpx.get(f"{api}/work_pools/shoal-test").json()["type"] == "process"
