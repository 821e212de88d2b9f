"""Cluster mode's durable state on S3 (moto's server on 127.0.0.1).

Ray Train storage and its public restore API, Prefect result storage, and a lock that two
processes contend for.

The whole multi-node flow is ``tests/infra/test_cluster_mode.py`` (soak); these are its parts,
small enough for ``make test``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("moto.server")
pytest.importorskip("s3fs")

import s3fs

from infra.durable import ray_storage, result_storage
from infra.locks import LocationBusy, hold_location
from infra.settings import Settings, get_settings
from infra.storage import resolve_output, runs_uri
from tests.infra.s3_server import list_keys, s3_server

pytestmark = pytest.mark.slow

BUCKET = "shoal-shared"
REPO = Path(__file__).resolve().parents[2]
HOLD = """
import sys
from infra.locks import hold_location
with hold_location(sys.argv[1]) as holder:
    holder.record(sys.argv[2])
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, str]]:
    with s3_server(BUCKET) as env:
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        s3fs.S3FileSystem.clear_instance_cache()
        try:
            yield env
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def storage(s3: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``SHOAL_STORAGE_URI`` on a fresh prefix of the bucket; short leases for the lock tests."""
    prefix = f"shoal-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("SHOAL_STORAGE_URI", f"s3://{BUCKET}/{prefix}")
    monkeypatch.setenv("SHOAL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SHOAL_LOCK_LEASE_S", "3")
    monkeypatch.delenv("SHOAL_OUTPUT_ROOT", raising=False)
    get_settings.cache_clear()
    yield prefix
    get_settings.cache_clear()


def test_unset_keeps_every_default_under_shoal_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHOAL_STORAGE_URI", raising=False)
    monkeypatch.delenv("SHOAL_OUTPUT_ROOT", raising=False)
    monkeypatch.setenv("SHOAL_HOME", str(tmp_path))
    settings = Settings()
    assert ray_storage(settings) == (str(tmp_path.resolve() / "ray_results"), None)
    assert result_storage(settings) is None
    assert runs_uri(settings) == str(tmp_path.resolve() / "runs")


def test_one_setting_moves_durable_state_to_s3(storage: str, s3: dict[str, str]) -> None:
    path, filesystem = ray_storage()
    assert path == f"{BUCKET}/{storage}/ray_results"
    assert filesystem is not None and filesystem.type_name == "s3"
    assert runs_uri() == f"s3://{BUCKET}/{storage}/runs"
    assert resolve_output("2026-11-26").uri == f"s3://{BUCKET}/{storage}/runs/2026-11-26"
    assert resolve_output("./d/").uri == f"s3://{BUCKET}/{storage}/runs/d"
    filesystem.create_dir(f"{path}/probe")  # the endpoint is moto's, not AWS's
    assert any(k.startswith(f"{storage}/ray_results/probe") for k in list_keys(s3, BUCKET))


def _holder(location: str, run: str, env: dict[str, str]) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, location, run],
        cwd=REPO,
        env={**env, "PYTHONPATH": str(REPO)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    return process


def _outcome(process: subprocess.Popen[str]) -> str:
    """``held`` once it holds the lock, else its refusal (the last line of its traceback)."""
    assert process.stdout is not None and process.stderr is not None
    line = process.stdout.readline().strip()
    if line == "held":
        return line
    process.wait(120)
    return process.stderr.read().strip().splitlines()[-1]


def test_a_location_is_held_by_one_process_and_freed_when_it_dies(
    storage: str, s3: dict[str, str]
) -> None:
    location = f"s3://{BUCKET}/{storage}/runs/2026-11-26"
    first = _holder(location, "run-first", dict(os.environ))
    try:
        assert _outcome(first) == "held"
        with pytest.raises(LocationBusy) as refused, hold_location(location):
            pass
        message = str(refused.value)
        assert f"output location {location} is in use by pid {first.pid} on " in message
        assert "(MLflow run run-first" in message and "choose another --output" in message
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # no release: only the lease's expiry frees it
        first.wait(30)
    deadline = time.monotonic() + 120
    while True:
        try:
            with hold_location(location) as holder:
                holder.record("run-second")
                (key,) = [k for k in list_keys(s3, BUCKET, f"{storage}/locks/")]
                body = s3fs.S3FileSystem().cat(f"{BUCKET}/{key}")
                assert json.loads(body)["run_id"] == "run-second"
            break
        except LocationBusy:
            assert time.monotonic() < deadline, "the dead holder's lease never expired"
            time.sleep(0.5)
    assert list_keys(s3, BUCKET, f"{storage}/locks/") == [], "released: the object is gone"


def test_of_two_processes_taking_one_location_at_once_exactly_one_wins(
    storage: str, s3: dict[str, str]
) -> None:
    location = f"s3://{BUCKET}/{storage}/runs/contended"
    contenders = [_holder(location, f"run-{i}", dict(os.environ)) for i in range(2)]
    try:
        outcomes = sorted(_outcome(p) for p in contenders)
    finally:
        for process in contenders:
            if process.poll() is None:
                process.communicate("", timeout=120)  # closing stdin releases
    assert outcomes[0] == "held", outcomes
    assert outcomes[1].startswith("infra.locks.LocationBusy: output location"), outcomes


def test_cached_results_are_stored_on_s3(
    storage: str, s3: dict[str, str], prefect_harness: None
) -> None:
    from prefect import flow, task

    calls: list[int] = []

    @task(cache_key_fn=lambda _, parameters: f"probe-{storage}", persist_result=True)
    def probe(value: int) -> int:
        calls.append(value)
        return value * 2

    @flow
    def twice() -> list[str]:
        stored = probe.with_options(result_storage=result_storage())
        return [stored(21, return_state=True).name for _ in range(2)]

    assert twice() == ["Completed", "Cached"] and calls == [21]
    assert f"{storage}/prefect-results/probe-{storage}" in list_keys(s3, BUCKET, storage)


@pytest.fixture(scope="module")
def ray_with_s3(s3: dict[str, str]) -> Iterator[None]:
    """A local Ray of its own (never another on this machine) whose workers read S3 from env."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, runtime_env={"env_vars": s3})
    yield
    ray.shutdown()


def test_training_resumes_from_its_checkpoint_on_s3_in_a_new_trainer(
    storage: str,
    s3: dict[str, str],
    ray_with_s3: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ray.cloudpickle
    import ray.train

    from catalog.synthetic import shop_tables
    from tasks.pretrain import PretrainParams, build_config, has_checkpoint, run_trainer, train
    from tasks.pretrain_worker import load_encoder
    from tests.tasks import fault_injection
    from tests.tasks.conftest import write_sequences

    root = tmp_path / "sequences"
    vocabulary = write_sequences(shop_tables(600, seed=2).events, root, max_len=16)
    params = PretrainParams.model_validate(
        {
            "epochs": 3,
            "batch_size": 64,
            "max_train_sequences": 600,
            "num_workers": 1,
            "patience": 10,
            "max_failures": 0,
            "encoder": {"hidden_size": 8, "embedding_dim": 4, "token_dim": 4, "time_dim": 4},
        }
    )
    config = {**build_config(str(root), vocabulary, 16, params, None), "threads_per_worker": 1}
    name = f"pretrain-{uuid.uuid4().hex[:8]}"
    assert not has_checkpoint(name)
    marker = tmp_path / "died"
    fault = {"epoch": 1, "step": 2, "rank": 0, "marker": str(marker), "delay_s": 3.0}
    # The test harness's dying loop, shipped to the workers by value (tests/tasks/test_pretrain)
    ray.cloudpickle.register_pickle_by_value(fault_injection)
    with monkeypatch.context() as patched, pytest.raises(ray.train.TrainingFailedError):
        patched.setattr("tasks.pretrain.train_loop_per_worker", fault_injection.dying_once)
        run_trainer({**config, "fault": fault}, params, name)  # max_failures=0: it gives up
    assert marker.exists() and has_checkpoint(name), "epoch 0's checkpoint is on S3"

    training = train(config, params, name)  # a new trainer, the same name: Ray restores

    assert training.starts == [0, 1], training.starts
    assert [int(h["epoch"]) for h in training.history] == [0, 1, 2]
    assert training.checkpoint.startswith(f"s3://{BUCKET}/{storage}/ray_results/{name}/")
    encoder = load_encoder(training.checkpoint, config["encoder"])
    assert encoder.embedding_dim == 4
    assert not (tmp_path / "home" / "ray_results").exists(), "nothing durable on local disk"
