"""Two rolling windows over one synthetic shop: a flash ring appears in the second.

The first window ends before the ring's first transaction; the second covers it. The retrain
flow must report the ring as a new risky cluster (alert, notification, artifact) and move the
champion alias as the quality gates say. Real engines: Prefect, Ray Train, MLflow.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from catalog.synthetic import generate_shop
from catalog.synthetic.common import WINDOW_START_MS
from infra.notifications import MAX_LISTED_ALERTS
from infra.settings import get_settings
from tests.flows.tiny import tiny_params

# Two pipeline runs in the first test's fixture: past the default 600 s on a busy machine.
pytestmark = [
    pytest.mark.soak,
    pytest.mark.timeout(1800),
    pytest.mark.usefixtures("prefect_harness", "local_ray"),
]

START = datetime.fromtimestamp(WINDOW_START_MS / 1000, UTC)
WINDOW_HOURS = 60.0  # data spans 72 h; the flash ring lives in the last 6


@pytest.fixture(scope="module")
def webhook() -> Iterator[list[dict[str, Any]]]:
    """A real HTTP endpoint on 127.0.0.1 that records every JSON body posted to it.

    Its plain ``http://`` address is a generic JSON webhook: Apprise's ``json://`` posts
    ``{"title", "message", …}`` to it (``infra.notifications``).
    """
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received, f"http://127.0.0.1:{server.server_port}/hook"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def two_windows(
    tmp_path_factory: pytest.TempPathFactory,
    webhook: tuple[list[dict[str, Any]], str],
    monkeypatch_module: pytest.MonkeyPatch,
) -> dict[str, Any]:
    from flows.retrain import retrain

    data = generate_shop(tmp_path_factory.mktemp("shop"), n_transactions=5000, seed=7)
    first = retrain(
        str(data.events),
        str(data.transactions),
        window_hours=WINDOW_HOURS,
        end=START + timedelta(hours=WINDOW_HOURS),
        params=tiny_params(epochs=2, sequences=1500, workers=2),
    )
    received, url = webhook
    monkeypatch_module.setenv("SHOAL_ALERT_WEBHOOK", url)
    get_settings.cache_clear()
    second = retrain(
        str(data.events),
        str(data.transactions),
        window_hours=WINDOW_HOURS,
        params=tiny_params(epochs=2, sequences=1500, workers=2),
    )
    monkeypatch_module.delenv("SHOAL_ALERT_WEBHOOK")
    get_settings.cache_clear()
    truth = pd.read_parquet(data.truth).set_index("txn_id")
    return {"first": first, "second": second, "truth": truth, "received": received}


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def members(summary: dict[str, Any], cluster: int) -> pd.Index:
    clusters = pd.read_parquet(f"{summary['output']}/clusters.parquet")
    return pd.Index(clusters.loc[clusters["cluster"] == cluster, "txn_id"])


def test_windows_roll_and_only_the_second_holds_the_flash_ring(two_windows: dict) -> None:
    first, second, truth = two_windows["first"], two_windows["second"], two_windows["truth"]
    assert first["window"]["end"] == (START + timedelta(hours=WINDOW_HOURS)).isoformat()
    end = datetime.fromisoformat(second["window"]["end"])
    assert end > START + timedelta(hours=71), "default end is the data's latest time"
    flash = truth.index[truth["pattern"] == "flash_ring"]
    for summary, expected in ((first, False), (second, True)):
        txns = pd.read_parquet(f"{summary['output']}/clusters.parquet")["txn_id"]
        assert txns.isin(flash).any() == expected


def test_first_run_becomes_champion_with_nothing_to_compare(two_windows: dict) -> None:
    first = two_windows["first"]
    assert first["lineage"] == [] and first["alerts"] == []
    assert first["decision"]["promoted"], first["decision"]["failed_gates"]
    assert first["decision"]["previous_champion"] is None


def test_flash_ring_is_reported_as_a_new_risky_cluster(two_windows: dict) -> None:
    second, truth = two_windows["second"], two_windows["truth"]
    lineage = pd.DataFrame(second["lineage"])
    print(lineage.to_string())
    assert {"continued", "grown", "shrunk"} & set(lineage["status"]), "normal traffic continues"
    flash_alerts = []
    for a in second["alerts"]:
        pattern = truth.loc[members(second, a["cluster"]), "pattern"]
        if (pattern == "flash_ring").mean() >= 0.8:
            flash_alerts.append(a)
    assert flash_alerts, f"no alert is dominated by the flash ring: {second['alerts']}"
    assert all(a["status"] == "new" for a in flash_alerts)
    posted = two_windows["received"]
    assert len(posted) == 1 and f"in run {second['run_id']}" in posted[0]["title"]
    message = posted[0]["message"]
    listed = [a["cluster"] for a in second["alerts"][:MAX_LISTED_ALERTS]]  # the rest: artifact
    assert all(f"cluster {cluster} (" in message for cluster in listed)
    assert {a["cluster"] for a in flash_alerts} & set(listed) or "more in the run's" in message
    assert second["alert_notified"] is True


def test_champion_alias_follows_the_gates(two_windows: dict) -> None:
    from prefect import flow

    from tasks.champion import ChampionParams, QualityGates, find_champion, promote

    first, second = two_windows["first"], two_windows["second"]
    decision = second["decision"]
    client = MlflowClient(get_settings().tracking_uri)
    name = get_settings().registered_model
    alias = client.get_model_version_by_alias(name, "champion")
    expected = decision["version"] if decision["promoted"] else first["decision"]["version"]
    assert str(alias.version) == expected, decision
    assert decision["previous_champion"] == first["decision"]["version"]
    assert decision["promoted"] == (decision["failed_gates"] == [])
    run = client.get_run(second["run_id"])
    assert run.data.tags["shoal.champion"] == ("promoted" if decision["promoted"] else "kept")
    assert run.data.metrics["lineage.new"] >= 1

    @flow
    def strict() -> dict[str, Any]:
        gates = QualityGates(min_clusters=10_000)
        return promote(second["run_id"], find_champion("champion"), ChampionParams(gates=gates))

    kept = strict()
    assert not kept["promoted"] and "clusters < 10000" in kept["failed_gates"][0]
    assert client.get_model_version_by_alias(name, "champion").version == alias.version
    tags = client.get_model_version(name, kept["version"]).tags
    assert tags["shoal.gates"] == "failed"
