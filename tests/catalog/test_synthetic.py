"""Properties of the synthetic worlds that the pipeline's evaluation relies on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from catalog.synthetic import (
    SyntheticTables,
    generate_marketplace,
    generate_shop,
    marketplace_tables,
    shop_tables,
)
from catalog.synthetic.common import MS_PER_HOUR, WINDOW_START_MS, trailing_count

N = 3_000
WINDOW_HOURS, MATURITY_HOURS = 72.0, 24.0

Generator = Callable[..., SyntheticTables]
WORLDS: dict[str, tuple[Generator, list[str], str, str]] = {
    # name: (tables function, its ring names, its machine-timing ring, its content-blind ring)
    "shop": (
        shop_tables,
        [
            "account_takeover",
            "card_testing",
            "timing_bot",
            "reshipping",
            "flash_ring",
            "rhythm_bot",
        ],
        "timing_bot",
        "rhythm_bot",
    ),
    "marketplace": (
        marketplace_tables,
        [
            "seller_collusion",
            "promo_bot",
            "replay_timing",
            "giftcard_takeover",
            "midnight_flash",
            "shuffled_replay",
        ],
        "replay_timing",
        "shuffled_replay",
    ),
}
FLASH = {"shop": "flash_ring", "marketplace": "midnight_flash"}


@pytest.fixture(scope="module", params=list(WORLDS))
def world(request: pytest.FixtureRequest) -> tuple[str, SyntheticTables]:
    make = WORLDS[request.param][0]
    return request.param, make(
        N, seed=1, window_hours=WINDOW_HOURS, label_maturity_hours=MATURITY_HOURS
    )


def frames(tables: SyntheticTables) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Events, and transactions joined with the truth."""
    txns = tables.transactions.to_pandas().merge(tables.truth.to_pandas(), on="txn_id")
    return tables.events.to_pandas(), txns


def test_contract_types(world: tuple[str, SyntheticTables]) -> None:
    _, t = world
    ev, tx = t.events.schema, t.transactions.schema
    assert ev.names[:4] == ["txn_id", "ts", "event", "user_id"]
    for schema in (ev, tx):
        assert schema.field("txn_id").type == pa.string()
        assert schema.field("ts").type == pa.timestamp("ms", tz="UTC")
    assert ev.field("event").type == pa.string()
    assert pa.types.is_floating(tx.field("amount").type)
    assert pa.types.is_integer(tx.field("label").type)
    assert t.truth.schema.names == ["txn_id", "pattern", "is_fraud"]
    txns = t.transactions.to_pandas()
    assert txns["txn_id"].is_unique and len(txns) == N
    assert (txns["amount"] >= 0).all()
    assert set(txns["decision"]) == {"approved", "declined"}
    assert set(txns["label"].dropna().unique()) <= {0, 1}
    assert t.truth.column("txn_id").equals(t.transactions.column("txn_id"))


def test_shop_feature_columns() -> None:
    schema = shop_tables(N, seed=1).transactions.schema
    kinds = {
        "account_age_days": pa.types.is_floating,
        "country_mismatch": pa.types.is_boolean,
        "card_country": pa.types.is_string,
        "device_id": pa.types.is_string,
        "txn_count_24h": pa.types.is_integer,
        "email_domain": pa.types.is_string,
        "is_new_shipping_address": pa.types.is_boolean,
        "user_id": pa.types.is_string,
    }
    for name, is_kind in kinds.items():
        assert is_kind(schema.field(name).type), name


def test_deterministic_by_seed(world: tuple[str, SyntheticTables]) -> None:
    name, t = world
    make = WORLDS[name][0]
    again = make(N, seed=1, window_hours=WINDOW_HOURS, label_maturity_hours=MATURITY_HOURS)
    for a, b in zip(
        (t.events, t.transactions, t.truth),
        (again.events, again.transactions, again.truth),
        strict=True,
    ):
        assert a.equals(b)
    other = make(N, seed=2, window_hours=WINDOW_HOURS, label_maturity_hours=MATURITY_HOURS)
    assert not other.transactions.equals(t.transactions)


def test_label_maturity(world: tuple[str, SyntheticTables]) -> None:
    name, t = world
    _, tx = frames(t)
    end = pd.Timestamp(WINDOW_START_MS + WINDOW_HOURS * MS_PER_HOUR, unit="ms", tz="UTC")
    young = tx["ts"] >= end - pd.Timedelta(hours=MATURITY_HOURS)
    assert tx.loc[young, "label"].isna().all()
    assert tx.loc[~young, "label"].notna().all()
    mature = tx[~young]
    assert (mature["label"].astype(bool) == mature["is_fraud"]).all()
    assert tx.loc[tx["pattern"] == FLASH[name], "label"].isna().all()
    start = pd.Timestamp(WINDOW_START_MS, unit="ms", tz="UTC")
    assert (tx["ts"] < end).all() and (tx["ts"] >= start).all()


def test_ring_sizes_and_base_rate(world: tuple[str, SyntheticTables]) -> None:
    name, t = world
    _, tx = frames(t)
    counts = tx["pattern"].value_counts()
    for ring in WORLDS[name][1]:
        assert 0.01 * N <= counts[ring] <= 0.02 * N, ring
        assert tx.loc[tx["pattern"] == ring, "is_fraud"].all()
    assert 0.001 * N <= counts["scattered_fraud"] <= 0.006 * N
    assert not tx.loc[tx["pattern"] == "normal", "is_fraud"].any()
    assert set(counts.index) == {"normal", "scattered_fraud", *WORLDS[name][1]}


def test_engine_misses_most_ring_fraud(world: tuple[str, SyntheticTables]) -> None:
    name, t = world
    _, tx = frames(t)
    declined = tx["decision"].eq("declined").groupby(tx["pattern"]).mean()
    for ring in WORLDS[name][1]:
        assert declined[ring] < 0.5, ring
    assert 0.002 < declined["normal"] < 0.05


def test_sessions_end_with_their_transaction(world: tuple[str, SyntheticTables]) -> None:
    _, t = world
    ev, tx = frames(t)
    assert set(ev["txn_id"]) == set(tx["txn_id"])
    # Per transaction, events are strictly increasing in time in file order.
    step = ev.groupby("txn_id", sort=False)["ts"].diff().dropna()
    assert (step > pd.Timedelta(0)).all()
    last = ev.groupby("txn_id")["ts"].max()
    assert (last.reindex(tx["txn_id"]).to_numpy() == tx["ts"].to_numpy()).all()
    sizes = ev.groupby("txn_id").size()
    assert sizes.min() >= 3 and sizes.max() <= 60
    users = ev.drop_duplicates("txn_id").set_index("txn_id")["user_id"]
    assert (users.reindex(tx["txn_id"]).to_numpy() == tx["user_id"].to_numpy()).all()
    assert ev["ts"].is_monotonic_increasing


def _ks(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic."""
    grid = np.sort(np.concatenate([a, b]))
    fa = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    fb = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    return float(np.abs(fa - fb).max())


def _tv(a: pd.Series, b: pd.Series) -> float:
    """Total variation distance between two categorical samples."""
    pa_, pb = a.value_counts(normalize=True), b.value_counts(normalize=True)
    return float(pa_.sub(pb, fill_value=0).abs().sum() / 2)


@pytest.fixture(scope="module", params=list(WORLDS))
def large_world(request: pytest.FixtureRequest) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """20k transactions, enough for ~200 of each timing-only ring.

    Events carry the pattern and ``gap_ms``, the time spent on ``page`` (the previous event's).
    """
    ev, tx = frames(WORLDS[request.param][0](20_000, seed=3))
    ev["pattern"] = ev["txn_id"].map(tx.set_index("txn_id")["pattern"])
    by_txn = ev.groupby("txn_id", sort=False)
    ev["gap_ms"] = by_txn["ts"].diff().dt.total_seconds() * 1000
    ev["page"] = by_txn["event"].shift()
    return request.param, ev, tx


def _assert_pages_and_features_are_normal(
    ev: pd.DataFrame, tx: pd.DataFrame, ring: str, others: set[str]
) -> None:
    """A timing-only ring: shoppers' pages, entry pages, lengths and intuitive features."""
    bot, human = ev[ev["pattern"] == ring], ev[ev["pattern"] == "normal"]
    assert _tv(bot["event"], human["event"]) < 0.08
    assert _tv(ev.loc[ev["pattern"].isin(others), "event"], human["event"]) > 0.3
    first = ev.drop_duplicates("txn_id")
    assert (
        _tv(
            first.loc[first["pattern"] == ring, "event"],
            first.loc[first["pattern"] == "normal", "event"],
        )
        < 0.15
    )
    lengths = ev.groupby("txn_id").size()
    bot_ids = tx.loc[tx["pattern"] == ring, "txn_id"]
    human_ids = tx.loc[tx["pattern"] == "normal", "txn_id"]
    assert _ks(lengths[bot_ids].to_numpy(), lengths[human_ids].to_numpy()) < 0.15

    b, h = tx[tx["pattern"] == ring], tx[tx["pattern"] == "normal"]
    features = [
        c
        for c in tx.columns
        if c not in {"txn_id", "ts", "label", "pattern", "is_fraud", "user_id"}
    ]
    for col in features:
        if pd.api.types.is_bool_dtype(h[col]):
            assert abs(b[col].mean() - h[col].mean()) < 0.05, col
        elif pd.api.types.is_numeric_dtype(h[col]):
            assert _ks(b[col].to_numpy(float), h[col].to_numpy(float)) < 0.15, col
        elif h[col].nunique() < 50:
            assert _tv(b[col], h[col]) < 0.15, col
        else:  # identifiers: as unshared as normal customers'
            assert b[col].nunique() / len(b) > 0.7 * h[col].nunique() / len(h), col


def test_timing_only_ring_differs_only_in_dwell(
    large_world: tuple[str, pd.DataFrame, pd.DataFrame],
) -> None:
    name, ev, tx = large_world
    _, rings, timing, blind = WORLDS[name]
    _assert_pages_and_features_are_normal(ev, tx, timing, set(rings) - {timing, blind})

    # Dwell: machine-regular for the bots, human for the rest.
    bot_gap = ev.loc[ev["pattern"] == timing, "gap_ms"].dropna()
    human_gap = ev.loc[ev["pattern"] == "normal", "gap_ms"].dropna()
    assert bot_gap.std() / bot_gap.mean() < 0.1
    assert human_gap.std() / human_gap.mean() > 0.5
    assert human_gap.median() > 3 * bot_gap.median()
    assert _ks(bot_gap.to_numpy(), human_gap.to_numpy()) > 0.8


def test_content_blind_ring_spends_human_delays_on_the_wrong_pages(
    large_world: tuple[str, pd.DataFrame, pd.DataFrame],
) -> None:
    name, ev, tx = large_world
    _, rings, timing, blind = WORLDS[name]
    _assert_pages_and_features_are_normal(ev, tx, blind, set(rings) - {timing, blind})
    gaps = ev.dropna(subset=["gap_ms"])
    bot, human = gaps[gaps["pattern"] == blind], gaps[gaps["pattern"] == "normal"]

    # What dwell statistics see (bag of events): the same delays, overall and per session.
    assert _ks(bot["gap_ms"].to_numpy(), human["gap_ms"].to_numpy()) < 0.05
    for stat in ("median", "min", "max"):
        per_session = [g.groupby("txn_id")["gap_ms"].agg(stat).to_numpy() for g in (bot, human)]
        assert _ks(*per_session) < 0.15, stat

    # What only the sequence shows: people linger on some pages, the bots on none.
    typical = np.log(human.groupby("page")["gap_ms"].median())
    assert typical.max() - typical.min() > np.log(5)

    def pairing(g: pd.DataFrame) -> float:
        return float(np.corrcoef(np.log(g["gap_ms"]), typical[g["page"]].to_numpy())[0, 1])

    assert pairing(human) > 0.3
    assert abs(pairing(bot)) < 0.1


def test_shop_rings_are_what_they_claim() -> None:
    ev, tx = frames(shop_tables(N, seed=4))
    ring = tx.groupby("pattern")
    ato, card = tx[tx["pattern"] == "account_takeover"], tx[tx["pattern"] == "card_testing"]
    normal = tx[tx["pattern"] == "normal"]
    assert ato["account_age_days"].median() > 180 and ato["country_mismatch"].mean() > 0.7
    assert card["amount"].max() < 5 and card["txn_count_24h"].median() > 3
    for name in ("account_takeover", "card_testing", "reshipping", "flash_ring"):
        assert ring.get_group(name)["device_id"].nunique() <= 12, name
    assert tx.loc[tx["pattern"] == "reshipping", "account_age_days"].max() < 5
    assert tx.loc[tx["pattern"] == "reshipping", "amount"].median() > 5 * normal["amount"].median()
    flash = tx[tx["pattern"] == "flash_ring"]
    end = pd.Timestamp(WINDOW_START_MS + WINDOW_HOURS * MS_PER_HOUR, unit="ms", tz="UTC")
    assert flash["ts"].min() >= end - pd.Timedelta(hours=6)
    card_events = ev[ev["txn_id"].isin(card["txn_id"])]
    assert card_events["event"].isin(["add_card", "pay_attempt"]).mean() > 0.6


def test_trailing_count() -> None:
    keys = np.array(["a", "b", "a", "a", "b"], dtype=object)
    ts = np.array([0, 5, 10, 30, 40], dtype=np.int64)
    assert trailing_count(keys, ts, 25).tolist() == [0, 0, 1, 1, 0]


def test_generate_shop_writes_parquet(tmp_path: Path) -> None:
    paths = generate_shop(tmp_path / "shop", n_transactions=500, seed=5)
    assert {p.name for p in (paths.events, paths.transactions, paths.truth)} == {
        "events.parquet",
        "transactions.parquet",
        "truth.parquet",
    }
    tables = shop_tables(500, seed=5)
    assert pq.read_table(paths.transactions).equals(tables.transactions)
    assert pq.read_table(paths.events).equals(tables.events)
    assert pq.read_table(paths.truth).equals(tables.truth)


def test_marketplace_feature_columns() -> None:
    schema = marketplace_tables(N, seed=1).transactions.schema
    kinds = {
        "seller_rating": pa.types.is_floating,
        "is_prime": pa.types.is_boolean,
        "channel": pa.types.is_string,
        "ip_prefix": pa.types.is_string,
        "seller_id": pa.types.is_string,
        "quantity": pa.types.is_integer,
        "buyer_tenure_days": pa.types.is_integer,
        "ip_txn_count_1h": pa.types.is_integer,
    }
    for name, is_kind in kinds.items():
        assert is_kind(schema.field(name).type), name
    shop_pages = set(shop_tables(N, seed=1).events.column("event").unique().to_pylist())
    market_pages = set(marketplace_tables(N, seed=1).events.column("event").unique().to_pylist())
    assert not shop_pages & market_pages
    assert 35 <= len(market_pages) <= 45 and 35 <= len(shop_pages) <= 45


def test_marketplace_rings_are_what_they_claim() -> None:
    ev, tx = frames(marketplace_tables(N, seed=4))
    by = {name: g for name, g in tx.groupby("pattern")}
    normal = by["normal"]
    assert by["seller_collusion"]["seller_id"].nunique() <= 4
    assert by["seller_collusion"]["seller_rating"].min() >= 4.9
    assert (by["promo_bot"]["buyer_tenure_days"] == 0).all()
    assert (by["promo_bot"]["channel"] == "android").all()
    assert by["promo_bot"]["ip_txn_count_1h"].mean() > 10 * normal["ip_txn_count_1h"].mean()
    assert by["giftcard_takeover"]["buyer_tenure_days"].min() > 365
    assert by["midnight_flash"]["amount"].median() > 20 * normal["amount"].median()
    for name in ("seller_collusion", "promo_bot", "giftcard_takeover", "midnight_flash"):
        assert by[name]["ip_prefix"].nunique() <= 8, name
    promo_events = ev[ev["txn_id"].isin(by["promo_bot"]["txn_id"])]
    assert promo_events["event"].isin(["/p/coupon/claim", "/checkout/coupon"]).mean() > 0.4


def test_generate_marketplace_writes_jsonl_and_csv(tmp_path: Path) -> None:
    paths = generate_marketplace(tmp_path / "market", n_transactions=500, seed=5)
    assert (paths.events.name, paths.transactions.name, paths.truth.name) == (
        "events.jsonl.gz",
        "transactions.csv",
        "truth.parquet",
    )
    tables = marketplace_tables(500, seed=5)
    events = pd.read_json(paths.events, lines=True, dtype={"ts": "int64"})
    expected = tables.events.to_pandas()
    assert events["ts"].dtype == np.int64
    assert (events["ts"].to_numpy() == expected["ts"].astype("int64").to_numpy()).all()
    for col in ("txn_id", "event", "user_id"):
        assert (events[col].to_numpy() == expected[col].to_numpy()).all()

    raw = pd.read_csv(paths.transactions, dtype={"ts": str})
    assert raw["ts"].str.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$").all()
    assert raw["ts"].str[-6:].nunique() > 1  # mixed local offsets, by buyer
    parsed = pd.to_datetime(raw["ts"], utc=True, format="ISO8601")
    want = tables.transactions.column("ts").to_pandas()
    assert (parsed.to_numpy() == want.to_numpy()).all()
    arrow = pcsv.read_csv(paths.transactions)
    assert pa.types.is_timestamp(arrow.schema.field("ts").type)
    assert arrow.column("label").null_count == tables.transactions.column("label").null_count
    assert pq.read_table(paths.truth).equals(tables.truth)
    again = generate_marketplace(tmp_path / "again", n_transactions=500, seed=5)
    assert paths.events.read_bytes() == again.events.read_bytes()
    assert paths.transactions.read_bytes() == again.transactions.read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("generate", [generate_shop, generate_marketplace])
def test_demo_size_is_generated_whole(tmp_path: Path, generate: Callable[..., object]) -> None:
    """The demo's 50k transactions come out complete, every one with its truth row."""
    paths = generate(tmp_path, n_transactions=50_000)

    def txn_ids(path: Path) -> list[str]:
        read = pcsv.read_csv if path.suffix == ".csv" else pq.read_table
        return read(path).column("txn_id").cast(pa.string()).to_pylist()

    transactions = txn_ids(paths.transactions)  # type: ignore[attr-defined]
    assert len(transactions) == 50_000
    assert sorted(transactions) == sorted(txn_ids(paths.truth))  # type: ignore[attr-defined]


@pytest.mark.parametrize("make", [shop_tables, marketplace_tables])
def test_rejects_impossible_requests(make: Generator) -> None:
    with pytest.raises(ValueError):
        make(50)
    with pytest.raises(ValueError):
        make(N, window_hours=0)
    with pytest.raises(ValueError):
        make(N, label_maturity_hours=-1)


@pytest.mark.parametrize("make", [shop_tables, marketplace_tables])
def test_short_window_keeps_flash_ring_unlabelled(make: Generator) -> None:
    """Flash rings stay inside the unlabelled tail whatever the window and horizon."""
    t = make(1_000, seed=6, window_hours=8.0, label_maturity_hours=2.0)
    _, tx = frames(t)
    flash = tx[tx["pattern"].isin(FLASH.values())]
    assert len(flash) > 0 and flash["label"].isna().all()
    assert tx["label"].notna().any()
