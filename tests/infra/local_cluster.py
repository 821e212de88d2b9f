"""A multi-node Shoal cluster on 127.0.0.1, configured by environment variables alone.

Processes, each in its own session: moto's S3 server, an MLflow server proxying artifacts to
S3, a Prefect server, a Dask scheduler with two workers (each its own local directory), and a
Ray cluster (``ray.cluster_utils.Cluster``): a head with no CPU for tasks (it runs drivers and
Train's controller), node ``a`` with one CPU, node ``b`` with one CPU and the custom
``accelerator`` resource. Used by ``tests/infra/test_cluster_mode.py``; run as a module
(``make cluster-demo``) it runs ``shoal run`` on a generated shop on that cluster and reports
where each stage ran and what landed on S3.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import s3fs
import yaml

from catalog.synthetic import generate_shop
from tests.infra.s3_server import list_keys, s3_server
from tests.ports import free_port
from tests.servers import NO_TELEMETRY, http_ok, stop, wait_for

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BUCKET = "shoal"
STATE = f"s3://{BUCKET}/state"
NODE_MEMORY = 200 * 1024**2  # each node's object store: the data is small, the machine shared


@contextmanager
def local_cluster(n_transactions: int, config: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Start everything, yield what a client needs (``env``, ``nodes``, input URIs…), stop it."""
    from ray.cluster_utils import Cluster

    tmp = Path(tempfile.mkdtemp(prefix="shoal-cm-"))  # short: Ray's socket paths are limited
    ports = {k: free_port() for k in ("prefect", "mlflow", "dask")}
    saved = dict(os.environ)
    procs: list[tuple[str, subprocess.Popen, Path]] = []
    ray_cluster = None
    with s3_server(BUCKET) as aws:
        os.environ.update(
            {
                **aws,
                "PYTHONPATH": str(REPO),
                "MLFLOW_S3_ENDPOINT_URL": aws["AWS_ENDPOINT_URL"],
                "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{ports['mlflow']}",
                "PREFECT_API_URL": f"http://127.0.0.1:{ports['prefect']}/api",
                **NO_TELEMETRY,
                "PREFECT_UI_ENABLED": "false",
                "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
                "OMP_WAIT_POLICY": "PASSIVE",
                "SHOAL_STORAGE_URI": STATE,
                "SHOAL_DASK_SCHEDULER": f"tcp://127.0.0.1:{ports['dask']}",
                "SHOAL_LOCK_LEASE_S": "10",
            }
        )  # Ray's nodes start from this process's environment
        for key in ("SHOAL_HOME", "SHOAL_OUTPUT_ROOT", "RAY_ADDRESS", "PREFECT_HOME"):
            os.environ.pop(key, None)
        s3fs.S3FileSystem.clear_instance_cache()

        def launch(name: str, command: list[Any]) -> None:
            log = tmp / f"{name}.log"
            proc = subprocess.Popen(
                [str(c) for c in command],
                cwd=tmp,
                env={**os.environ, "PREFECT_HOME": str(tmp / name)},
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            procs.append((name, proc, log))

        try:
            data = generate_shop(tmp / "data", n_transactions=n_transactions, seed=3)
            lake = s3fs.S3FileSystem()
            for path in (data.events, data.transactions):
                lake.put(str(path), f"{BUCKET}/lake/{path.name}")
            scheduler = os.environ["SHOAL_DASK_SCHEDULER"]
            launch(
                "prefect",
                [
                    BIN / "prefect",
                    "server",
                    "start",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    ports["prefect"],
                    "--no-ui",
                    "--analytics-off",
                ],
            )
            launch(
                "mlflow",
                [
                    BIN / "mlflow",
                    "server",
                    "--backend-store-uri",
                    f"sqlite:///{tmp / 'mlflow.db'}",
                    "--artifacts-destination",
                    f"s3://{BUCKET}/mlartifacts",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    ports["mlflow"],
                    "--workers",
                    "1",
                ],
            )
            launch(
                "dask-scheduler",
                [
                    BIN / "dask",
                    "scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    ports["dask"],
                    "--no-dashboard",
                ],
            )
            for i in (1, 2):
                launch(f"dask-worker-{i}", [
                    BIN / "dask", "worker", scheduler, "--nthreads", "1", "--nworkers", "1",
                    "--memory-limit", "2GB", "--no-dashboard",
                    "--local-directory", tmp / f"dask-{i}",
                ])  # fmt: skip
            ray_cluster = Cluster(
                initialize_head=True,
                head_node_args={"num_cpus": 0, "object_store_memory": NODE_MEMORY},
            )
            nodes = {
                "a": ray_cluster.add_node(num_cpus=1, object_store_memory=NODE_MEMORY),
                "b": ray_cluster.add_node(
                    num_cpus=1, resources={"accelerator": 1}, object_store_memory=NODE_MEMORY
                ),
            }
            ray_cluster.wait_for_nodes()
            api, tracking = os.environ["PREFECT_API_URL"], os.environ["MLFLOW_TRACKING_URI"]
            wait_for(http_ok(f"{api}/health"), "Prefect server", 300, procs)
            wait_for(http_ok(f"{tracking}/health"), "MLflow server", 240, procs)
            config_path = tmp / "params.yaml"
            config_path.write_text(yaml.safe_dump(config))
            yield {
                "tmp": tmp,
                "env": {**os.environ, "RAY_ADDRESS": ray_cluster.address},
                "procs": procs,
                "ray": ray_cluster,
                "nodes": nodes,
                "config": config_path,
                "aws": aws,
                "events": f"s3://{BUCKET}/lake/{data.events.name}",
                "transactions": f"s3://{BUCKET}/lake/{data.transactions.name}",
            }
        finally:
            if ray_cluster is not None:
                ray_cluster.shutdown()
            for _, proc, _ in reversed(procs):
                stop(proc)
            os.environ.clear()
            os.environ.update(saved)
            s3fs.S3FileSystem.clear_instance_cache()
            shutil.rmtree(tmp, ignore_errors=True)


def shoal(
    cluster: dict[str, Any], worker: str, args: list[str], log_name: str, **env: str
) -> tuple[subprocess.Popen, Path]:
    """``shoal <args>`` as a Prefect worker would: its own cwd and ``SHOAL_HOME``, log to a file."""
    cwd = cluster["tmp"] / worker
    cwd.mkdir(exist_ok=True)
    log = cluster["tmp"] / f"{worker}-{log_name}.log"
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", *args],
            cwd=cwd,
            env={**cluster["env"], "SHOAL_HOME": str(cwd / "home"), **env},
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return process, log


def shoal_run(cluster: dict[str, Any], worker: str, output: str) -> tuple[subprocess.Popen, Path]:
    """``shoal run`` of the cluster's inputs into ``<STATE>/runs/<output>`` from ``worker``."""
    args = ["run", "--events", cluster["events"], "--transactions", cluster["transactions"]]
    args += ["--output", f"{STATE}/runs/{output}", "--config", str(cluster["config"])]
    return shoal(cluster, worker, args, output)


@contextmanager
def prefect_worker(cluster: dict[str, Any], worker: str, pool: str) -> Iterator[Path]:
    """``prefect worker start`` on the process ``pool``, in ``worker``'s own cwd and home.

    Its flow runs inherit its environment: the cluster's variables, ``SHOAL_HOME`` and
    ``PREFECT_HOME`` under that home. Yields the worker's log; the worker stops on exit.
    """
    cwd = cluster["tmp"] / worker
    cwd.mkdir(exist_ok=True)
    home = cwd / "home"
    home.mkdir(exist_ok=True)  # as on a worker machine: Prefect makes only its own folder
    log = cluster["tmp"] / f"{worker}.log"
    env = {
        **cluster["env"],
        "SHOAL_HOME": str(home),
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_WORKER_QUERY_SECONDS": "2",  # the default 10 s: idle time in a test
    }
    command = [BIN / "prefect", "worker", "start", "--pool", pool, "--type", "process"]
    process = subprocess.Popen(
        [str(c) for c in [*command, "--name", worker]],
        cwd=cwd,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield log
    finally:
        stop(process)


def _demo() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    config = {"pretrain": {"epochs": args.epochs, "num_workers": 2}}
    with local_cluster(args.transactions, config) as cluster:
        from mlflow.tracking import MlflowClient

        print(f"cluster up in {cluster['tmp']}; RAY_ADDRESS={cluster['env']['RAY_ADDRESS']}")
        process, log = shoal_run(cluster, "worker-1", "demo")
        code = process.wait()
        print(log.read_text()[-6000:])
        if code != 0:
            raise SystemExit(code)
        client = MlflowClient(cluster["env"]["MLFLOW_TRACKING_URI"])
        (run,) = client.search_runs([client.get_experiment_by_name("shoal").experiment_id])
        names = {str(node.node_id): name for name, node in cluster["nodes"].items()}
        for tag, value in sorted(run.data.tags.items()):
            if tag.startswith(("shoal.pretrain.node", "shoal.cluster.node")):
                print(f"{tag}: node {names.get(value, value)}")
        keys = list_keys(cluster["aws"], BUCKET)
        for prefix in ("state/runs/demo/", "state/ray_results/", "state/prefect-results/"):
            print(f"{prefix}: {sum(k.startswith(prefix) for k in keys)} objects")
        print(f"mlartifacts/: {sum(k.startswith('mlartifacts/') for k in keys)} objects")


if __name__ == "__main__":
    _demo()
