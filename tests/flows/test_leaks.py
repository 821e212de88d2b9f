"""Back-to-back runs of the whole flow leak no file descriptors, processes or memory.

A scheduled Shoal runs for months in one worker process: Prefect, MLflow, Ray Train and Dask
must all give back what a run took. The first run warms up imports, caches, Ray's worker pool
and Prefect's client, so growth is measured from the second run on. Also checks that the local
Ray those runs use listens on loopback only.
"""

from __future__ import annotations

import ipaddress

import psutil
import pytest

from catalog.synthetic import generate_shop
from infra.usage import LEAK_TOLERANCE, Usage, growth, process_usage
from tests.flows.tiny import tiny_params

pytestmark = [
    pytest.mark.soak,
    pytest.mark.usefixtures("prefect_harness", "local_ray"),
    pytest.mark.timeout(1800),  # five runs: ~2 min idle, far more on a loaded 2-core machine
]

RUNS = 5


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> list[Usage]:
    """Usage after each of five runs of the flow on the same 500 transactions."""
    from flows.fraud_clustering import fraud_clustering

    data = generate_shop(tmp_path_factory.mktemp("leaks"), n_transactions=500, seed=11)
    usage, run_ids = [], set()
    for _ in range(RUNS):
        summary = fraud_clustering(str(data.events), str(data.transactions), params=tiny_params())
        run_ids.add(summary["run_id"])
        usage.append(process_usage())
    assert len(run_ids) == RUNS
    return usage


def test_no_growth_in_open_files_processes_or_memory(samples: list[Usage]) -> None:
    table = "\n".join(f"run {i + 1}: {s}" for i, s in enumerate(samples))
    print(table)  # the figures, for the report (pytest -rP)
    grown = growth(samples)
    for measure, limit in LEAK_TOLERANCE.items():
        assert grown[measure] <= limit, f"{measure} grew by {grown[measure]:.1f}\n{table}"


def test_local_ray_listens_on_loopback_only(samples: list[Usage]) -> None:
    children = {p.pid for p in psutil.Process().children(recursive=True)}
    listening = [
        c
        for c in psutil.net_connections("inet")
        if c.status == psutil.CONN_LISTEN and c.pid in children
    ]
    assert listening, "expected Ray's GCS and raylet to be listening"
    for conn in listening:
        address = ipaddress.ip_address(conn.laddr.ip)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        assert address.is_loopback, f"{psutil.Process(conn.pid).name()} listens on {conn.laddr}"
