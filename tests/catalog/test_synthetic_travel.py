"""The third world, a travel agency: what its rings are, and the contract it keeps."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from catalog.synthetic import SyntheticTables, generate_travel, travel_tables
from catalog.synthetic.common import MS_PER_HOUR, WINDOW_START_MS
from tests.catalog.test_synthetic import _ks, _tv

N = 6_000
RINGS = ["ghost_ticketing", "points_drain", "deposit_cycling", "booking_bot", "fare_flash"]


@pytest.fixture(scope="module")
def travel() -> tuple[SyntheticTables, pd.DataFrame, pd.DataFrame]:
    tables = travel_tables(N, seed=2)
    tx = tables.transactions.to_pandas().merge(tables.truth.to_pandas(), on="txn_id")
    ev = tables.events.to_pandas()
    ev["pattern"] = ev["txn_id"].map(tx.set_index("txn_id")["pattern"])
    ev["gap_ms"] = ev.groupby("txn_id", sort=False)["ts"].diff().dt.total_seconds() * 1000
    return tables, ev, tx


def test_contract_labels_and_ring_sizes(travel) -> None:
    tables, ev, tx = travel
    schema = tables.transactions.schema
    assert schema.field("ts").type == pa.timestamp("ms", tz="UTC")
    assert pa.types.is_integer(schema.field("label").type)
    for name in ("international", "one_way", "name_mismatch"):
        assert pa.types.is_boolean(schema.field(name).type), name
    assert tx["txn_id"].is_unique and len(tx) == N and (tx["amount"] >= 0).all()
    counts = tx["pattern"].value_counts()
    assert set(counts.index) == {"normal", "scattered_fraud", *RINGS}
    for ring in RINGS:
        assert 0.01 * N <= counts[ring] <= 0.02 * N, ring
        assert tx.loc[tx["pattern"] == ring, "decision"].eq("declined").mean() < 0.5, ring
    end = pd.Timestamp(WINDOW_START_MS + 72 * MS_PER_HOUR, unit="ms", tz="UTC")
    young = tx["ts"] >= end - pd.Timedelta(hours=24)
    assert tx.loc[young, "label"].isna().all() and tx.loc[~young, "label"].notna().all()
    assert tx.loc[tx["pattern"] == "fare_flash", "label"].isna().all()
    last = ev.groupby("txn_id")["ts"].max().reindex(tx["txn_id"]).to_numpy()
    assert (last == tx["ts"].to_numpy()).all()
    assert travel_tables(N, seed=2).transactions.equals(tables.transactions)


def test_rings_are_what_they_claim(travel) -> None:
    _, ev, tx = travel
    ring = {name: tx[tx["pattern"] == name] for name in [*RINGS, "normal"]}
    ghost = ring["ghost_ticketing"]
    assert ghost["days_to_departure"].max() <= 2 and ghost["one_way"].mean() > 0.8
    assert ghost["device_id"].nunique() <= 8
    points = ring["points_drain"]
    assert (points["payment_method"] == "points").all()
    assert points["account_age_days"].min() > 365
    deposits = ev[ev["pattern"] == "deposit_cycling"]
    assert deposits["event"].isin(["payment_details", "secure_challenge"]).mean() > 0.6
    assert ring["deposit_cycling"]["amount"].max() <= 30
    # the booking bot: travellers' pages and features, machine timing
    bot, human = ev[ev["pattern"] == "booking_bot"], ev[ev["pattern"] == "normal"]
    assert _tv(bot["event"], human["event"]) < 0.1
    assert _ks(ring["booking_bot"]["amount"].to_numpy(), ring["normal"]["amount"].to_numpy()) < 0.2
    gaps = bot["gap_ms"].dropna()
    assert gaps.std() / gaps.mean() < 0.1 and human["gap_ms"].median() > 3 * gaps.median()
    flash = ring["fare_flash"]
    assert flash["account_age_days"].max() < 1 and flash["device_id"].nunique() == 3


def test_generate_travel_writes_parquet(tmp_path: Path) -> None:
    paths = generate_travel(tmp_path / "travel", n_transactions=500, seed=1)
    assert pq.read_table(paths.transactions).num_rows == 500
    assert pq.read_table(paths.truth).column_names == ["txn_id", "pattern", "is_fraud"]
