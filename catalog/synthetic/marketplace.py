"""A second world: a mobile-first marketplace, shaped unlike the shop on purpose.

Nothing in the pipeline may assume the shop's page names, feature columns or file formats;
this generator checks that. Its pages are app screens and URL paths, its intuitive features
are marketplace ones (seller rating, membership, channel, IP prefix), its events are gzip JSON
Lines with epoch-millisecond ``ts`` and its transactions are CSV with ISO-8601 ``ts`` in the
buyer's local offset. Six rings of its own, two of them timing-only: ``replay_timing``
(machine-steady dwell) and ``shuffled_replay`` (human delays spent on the wrong screens).

Files written by :func:`generate_marketplace`: ``events.jsonl.gz`` (``txn_id``, ``ts`` epoch
ms, ``event``, ``user_id``), ``transactions.csv`` (``txn_id``, ``ts``, ``amount``,
``user_id``, ``seller_id``, ``seller_rating``, ``is_prime``, ``channel``, ``ip_prefix``,
``quantity``, ``buyer_tenure_days``, ``ip_txn_count_1h``, ``label``, ``decision``) and
``truth.parquet`` (``txn_id``, ``pattern``, ``is_fraud``).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from catalog.synthetic.common import (
    MS_PER_DAY,
    Archetype,
    Cohort,
    Ring,
    Site,
    Step,
    SyntheticPaths,
    SyntheticTables,
    Velocity,
    Window,
    assemble,
    burst_times,
    carve,
    choice,
    content_blind_gaps,
    diurnal_times,
    hex_ids,
    human_gaps,
    regular_gaps,
    replayed_gaps,
    ring_sizes,
    script_sessions,
)

PAGES: dict[str, tuple[float, float]] = {
    "screen:home": (6.0, 5.0),
    "screen:search": (5.0, 6.0),
    "screen:search_results": (6.0, 11.0),
    "/p/category/browse": (4.0, 10.0),
    "/p/item/view": (12.0, 22.0),
    "/p/item/photos": (2.5, 14.0),
    "/p/item/questions": (1.2, 30.0),
    "/p/item/shipping": (1.0, 12.0),
    "/p/seller/profile": (1.5, 15.0),
    "/p/seller/reviews": (1.2, 35.0),
    "/p/store/follow": (0.2, 3.0),
    "/p/deals/today": (1.5, 12.0),
    "/p/promo/landing": (0.4, 10.0),
    "/p/coupon/claim": (0.3, 4.0),
    "/p/compare": (0.3, 25.0),
    "/p/watchlist": (1.2, 8.0),
    "/p/watchlist/add": (1.0, 3.0),
    "/p/offer/make": (0.6, 20.0),
    "/p/offer/accept": (0.3, 6.0),
    "/p/bid/place": (0.6, 15.0),
    "/p/giftcard/buy": (0.25, 15.0),
    "/p/cart/add": (3.0, 3.0),
    "/p/cart": (1.5, 10.0),
    "screen:notifications": (1.0, 6.0),
    "screen:messages": (0.8, 25.0),
    "screen:share": (0.2, 5.0),
    "screen:feedback": (0.1, 30.0),
    "screen:login": (1.5, 10.0),
    "screen:signup": (0.3, 45.0),
    "/account/settings": (0.3, 15.0),
    "/account/security": (0.08, 25.0),
    "/account/orders": (0.8, 12.0),
    "/account/addresses": (0.1, 25.0),
    "/account/payment/add": (0.05, 40.0),
    "/help/center": (0.3, 20.0),
    "/help/returns": (0.2, 25.0),
    "/checkout/start": (0.0, 6.0),
    "/checkout/address": (0.0, 30.0),
    "/checkout/coupon": (0.0, 12.0),
    "/checkout/payment": (0.0, 28.0),
    "/checkout/review": (0.0, 14.0),
    "/checkout/confirm": (0.0, 3.0),
}

FLOWS: dict[str, dict[str, float]] = {
    "screen:home": {
        "screen:search": 3,
        "/p/category/browse": 2,
        "/p/deals/today": 1,
        "screen:notifications": 1,
    },
    "screen:search": {"screen:search_results": 1},
    "screen:search_results": {"/p/item/view": 4, "screen:search": 1.5},
    "/p/category/browse": {"/p/item/view": 3, "/p/category/browse": 1},
    "/p/item/view": {
        "/p/item/photos": 1.5,
        "/p/item/questions": 0.6,
        "/p/item/shipping": 0.6,
        "/p/seller/profile": 0.8,
        "/p/cart/add": 1.5,
        "/p/watchlist/add": 0.6,
        "/p/offer/make": 0.3,
        "/p/bid/place": 0.3,
        "/p/item/view": 1.5,
        "screen:search": 1,
    },
    "/p/item/photos": {"/p/item/view": 1, "/p/cart/add": 0.7},
    "/p/seller/profile": {"/p/seller/reviews": 1, "/p/item/view": 1, "/p/store/follow": 0.2},
    "/p/seller/reviews": {"/p/item/view": 1},
    "/p/deals/today": {"/p/item/view": 3, "/p/promo/landing": 0.3},
    "/p/cart/add": {"/p/cart": 1, "/p/item/view": 1, "screen:search": 0.5},
    "/p/offer/make": {"screen:messages": 1, "/p/item/view": 1},
    "screen:notifications": {"/p/item/view": 2, "screen:messages": 1, "/p/watchlist": 1},
    "screen:login": {"screen:home": 1, "/account/orders": 0.5, "screen:notifications": 0.5},
    "/p/watchlist": {"/p/item/view": 2},
    "/account/orders": {"screen:feedback": 0.2, "/help/returns": 0.2, "/p/item/view": 1},
}

ARCHETYPES: dict[str, Archetype] = {
    "window_shopper": Archetype(
        0.30,
        entry={"screen:home": 3, "/p/category/browse": 1},
        likes={"/p/category/browse": 2, "/p/item/photos": 2, "/p/compare": 2},
        log_length=(3.0, 0.5),
    ),
    "deal_hunter": Archetype(
        0.20,
        entry={"/p/deals/today": 2, "screen:search": 2},
        likes={"/p/deals/today": 3, "/p/offer/make": 3, "/p/bid/place": 3, "/p/coupon/claim": 3},
        log_length=(2.6, 0.5),
    ),
    "app_regular": Archetype(
        0.30,
        entry={"screen:notifications": 3, "screen:login": 1, "screen:home": 1},
        likes={"/p/watchlist": 3, "screen:messages": 2, "/account/orders": 2},
        log_length=(2.0, 0.6),
    ),
    "quick_buyer": Archetype(
        0.20,
        entry={"/p/item/view": 3, "/p/watchlist": 1},
        likes={"/p/cart/add": 3},
        log_length=(0.7, 0.6),
    ),
}

CHECKOUT: tuple[Step, ...] = (
    Step(("/p/cart",), 0, 1, p=0.5),
    Step(("/checkout/start",)),
    Step(("/checkout/address",), 0, 1, p=0.4),
    Step(("/checkout/coupon",), 0, 1, p=0.15),
    Step(("/checkout/payment",)),
    Step(("/checkout/review",), 0, 1, p=0.5),
    Step(("/checkout/confirm",)),
)

SITE = Site(PAGES, FLOWS, ARCHETYPES, CHECKOUT, flow_share=0.65, max_events=60)
VOCAB = SITE.index

CHANNELS = {"ios": 35, "android": 30, "web": 25, "mweb": 10}
# Buyers' local offsets for the CSV's ISO-8601 timestamps (transactions are stored in UTC).
UTC_OFFSETS_MIN = (0, 60, 120, -300, -480, 330, 540, -180)
BASE_FRAUD_RATE = 0.003

RINGS: dict[str, Ring] = {
    "seller_collusion": Ring(0.014, 0.05),
    "promo_bot": Ring(0.016, 0.25),
    "replay_timing": Ring(0.010, 0.0),  # decided like normal traffic: the engine sees nothing
    "giftcard_takeover": Ring(0.012, 0.10),
    "midnight_flash": Ring(0.010, 0.03),
    "shuffled_replay": Ring(0.010, 0.0),  # human delays, wrong screens: unseen by the engine
}


def generate_marketplace(
    out_dir: str | Path,
    n_transactions: int = 50_000,
    seed: int = 0,
    window_hours: float = 72.0,
    label_maturity_hours: float = 24.0,
) -> SyntheticPaths:
    """Write ``events.jsonl.gz``, ``transactions.csv`` and ``truth.parquet`` under ``out_dir``.

    The formats differ from the shop's on purpose: ingestion must accept epoch milliseconds
    and ISO-8601 strings with mixed UTC offsets as well as Parquet timestamps.
    """
    tables = marketplace_tables(n_transactions, seed, window_hours, label_maturity_hours)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = SyntheticPaths(out / "events.jsonl.gz", out / "transactions.csv", out / "truth.parquet")
    _write_jsonl_gz(tables.events, paths.events)
    pcsv.write_csv(_iso_local_ts(tables.transactions), paths.transactions)
    pq.write_table(tables.truth, paths.truth)
    return paths


def marketplace_tables(
    n_transactions: int = 50_000,
    seed: int = 0,
    window_hours: float = 72.0,
    label_maturity_hours: float = 24.0,
) -> SyntheticTables:
    """The marketplace's tables in memory, with Arrow timestamps (before file formatting)."""
    rng = np.random.default_rng(seed)
    window = Window.of(window_hours, label_maturity_hours)
    sizes = ring_sizes(RINGS, n_transactions)
    n_lookalike = (
        n_transactions - sum(sizes.values()) + sizes["replay_timing"] + sizes["shuffled_replay"]
    )
    # shuffled_replay draws from its own stream and is carved last, so every other cohort
    # is exactly what it was before it existed.
    shuffle_rng = rng.spawn(1)[0]
    market = _Market(rng, n_lookalike, window)
    normal, scattered, replay, shuffled = carve(
        rng,
        market.cohort(rng, n_lookalike),
        {
            "scattered_fraud": round(BASE_FRAUD_RATE * n_transactions),
            "replay_timing": sizes["replay_timing"],
            "shuffled_replay": sizes["shuffled_replay"],
        },
    )
    cohorts = [
        normal,
        _scattered(rng, scattered),
        # Replayed sessions at a steady ~1.1 s a screen; pages and features stay normal.
        replay.as_fraud(gaps_ms=regular_gaps(rng, replay.sessions, 1_100.0, 40.0)),
        _seller_collusion(rng, sizes["seller_collusion"], window),
        _promo_bot(rng, sizes["promo_bot"], window, market),
        _giftcard_takeover(rng, sizes["giftcard_takeover"], window, market),
        _midnight_flash(rng, sizes["midnight_flash"], window, market),
        # App automation sleeping a recorded human's delays in random order: pages, features
        # and the set of delays stay normal, only which screen each delay falls on changes.
        shuffled.as_fraud(
            gaps_ms=content_blind_gaps(shuffle_rng, shuffled.sessions, shuffled.gaps_ms)
        ),
    ]
    velocity = Velocity("ip_txn_count_1h", key="ip_prefix", hours=1.0)
    return assemble(rng, cohorts, SITE.vocabulary, window, velocity)


# --------------------------------------------------------------------------- normal traffic


def _ip_prefixes(rng: np.random.Generator, n: int) -> np.ndarray:
    octets = rng.integers(1, 255, size=(n, 3))
    return np.array([f"{a}.{b}.{c}.0/24" for a, b, c in octets.tolist()], dtype=object)


class _Market:
    """Buyers and sellers of the marketplace, shared by normal-looking cohorts and rings."""

    def __init__(self, rng: np.random.Generator, n_transactions: int, window: Window) -> None:
        self.window = window
        n = max(50, int(0.5 * n_transactions))
        self.buyer = hex_ids(rng, "buyer-", n, digits=9)
        new = rng.random(n) < 0.15
        self.tenure = np.where(
            new, rng.integers(0, 15, n), np.minimum(rng.lognormal(np.log(600), 0.9, n), 7000)
        ).astype(np.int64)
        self.prime = rng.random(n) < np.where(new, 0.1, 0.4)
        self.channel = choice(rng, CHANNELS, n)
        self.home_ip = _ip_prefixes(rng, n)
        n_sellers = max(20, n_transactions // 25)
        self.seller = hex_ids(rng, "seller-", n_sellers, digits=7)
        self.rating = np.round(np.clip(5.0 - rng.gamma(1.2, 0.25, n_sellers), 2.5, 5.0), 2)

    def cohort(self, rng: np.random.Generator, n: int) -> Cohort:
        """Normal purchases; also the base of look-alike fraud."""
        sessions = SITE.sessions(rng, n)
        ts = diurnal_times(rng, n, self.window)
        buyer = rng.integers(0, len(self.buyer), n)
        seller = (len(self.seller) * rng.random(n) ** 2).astype(np.int64)  # a few big sellers
        tenure = self.tenure[buyer] + (ts - self.window.start_ms) // MS_PER_DAY
        roaming = rng.random(n) < 0.2
        quantity = rng.geometric(0.65, n)
        features = {
            "amount": np.round(rng.lognormal(np.log(35), 1.0, n) * quantity**0.7, 2),
            "user_id": self.buyer[buyer],
            "seller_id": self.seller[seller],
            "seller_rating": self.rating[seller],
            "is_prime": self.prime[buyer],
            "channel": np.where(
                rng.random(n) < 0.85, self.channel[buyer], choice(rng, CHANNELS, n)
            ),
            "ip_prefix": np.where(roaming, _ip_prefixes(rng, n), self.home_ip[buyer]),
            "quantity": quantity.astype(np.int64),
            "buyer_tenure_days": tenure,
        }
        gaps = human_gaps(rng, sessions, SITE.page_seconds, sigma=0.9)
        decline_p = 0.008 + 0.03 * (tenure < 7)
        return Cohort("normal", np.zeros(n, bool), ts, sessions, gaps, features, decline_p)


# --------------------------------------------------------------------------- fraud


def _scattered(rng: np.random.Generator, c: Cohort) -> Cohort:
    """Lone fraudsters: normal browsing, pricier baskets, away from home networks."""
    n = len(c.ts_ms)
    features = dict(c.features)
    features["amount"] = np.round(c.features["amount"] * rng.uniform(1.5, 5.0, n), 2)
    features["ip_prefix"] = _ip_prefixes(rng, n)
    return c.as_fraud(features=features, decline_p=np.full(n, 0.3))


def _pick(rng: np.random.Generator, pool: np.ndarray, n: int) -> np.ndarray:
    return pool[rng.integers(0, len(pool), n)]


def _seller_collusion(rng: np.random.Generator, n: int, window: Window) -> Cohort:
    """Shill buying.

    Fresh buyer accounts on a few networks buy cheap items from a handful of new colluding sellers
    through accepted offers, pumping their ratings.
    """
    script = (
        Step(("screen:search",), 0, 1, p=0.5),
        Step(("/p/seller/profile",)),
        Step(("/p/item/view",), 1, 2),
        Step(("/p/offer/make",)),
        Step(("/p/offer/accept",)),
        Step(("/checkout/start",)),
        Step(("/checkout/payment",)),
        Step(("/checkout/confirm",)),
    )
    sessions = script_sessions(rng, n, script, VOCAB)
    ts = burst_times(rng, n, window.start_ms, window.end_ms, n_bursts=10, spread_minutes=60)
    sellers = hex_ids(rng, "seller-", 4, digits=7)
    seller = rng.integers(0, len(sellers), n)
    features = {
        "amount": np.round(rng.uniform(12, 40, n), 2),
        "user_id": hex_ids(rng, "buyer-", n, digits=9),
        "seller_id": sellers[seller],
        "seller_rating": np.round(rng.uniform(4.9, 5.0, len(sellers)), 2)[seller],
        "is_prime": np.zeros(n, bool),
        "channel": choice(rng, {"web": 9, "mweb": 1}, n),
        "ip_prefix": _pick(rng, _ip_prefixes(rng, 6), n),
        "quantity": np.ones(n, np.int64),
        "buyer_tenure_days": rng.integers(0, 20, n),
    }
    gaps = human_gaps(rng, sessions, SITE.uniform_seconds(2.5), sigma=0.35, speed_sigma=0.1)
    return RINGS["seller_collusion"].cohort("seller_collusion", ts, sessions, gaps, features)


def _promo_bot(rng: np.random.Generator, n: int, window: Window, market: _Market) -> Cohort:
    """Sign-up bonus farming on emulators.

    Sign up, claim and apply coupons in a loop every ~300 ms, pay a few dollars; a couple of
    networks, zero-day accounts.
    """
    script = (
        Step(("screen:signup",)),
        Step(("/p/promo/landing",)),
        Step(("/p/coupon/claim", "/checkout/coupon"), 2, 6),
        Step(("/checkout/payment",)),
        Step(("/checkout/confirm",)),
    )
    sessions = script_sessions(rng, n, script, VOCAB)
    ts = burst_times(rng, n, window.start_ms, window.end_ms, n_bursts=4, spread_minutes=30)
    seller = rng.integers(0, len(market.seller), n)  # whoever honours the coupon
    features = {
        "amount": np.round(rng.uniform(4, 15, n), 2),
        "user_id": hex_ids(rng, "buyer-", n, digits=9),
        "seller_id": market.seller[seller],
        "seller_rating": market.rating[seller],
        "is_prime": np.zeros(n, bool),
        "channel": np.full(n, "android", dtype=object),
        "ip_prefix": _pick(rng, _ip_prefixes(rng, 3), n),
        "quantity": np.ones(n, np.int64),
        "buyer_tenure_days": np.zeros(n, np.int64),
    }
    gaps = regular_gaps(rng, sessions, 300.0, 40.0)
    return RINGS["promo_bot"].cohort("promo_bot", ts, sessions, gaps, features)


def _giftcard_takeover(rng: np.random.Generator, n: int, window: Window, market: _Market) -> Cohort:
    """Taken-over long-standing prime accounts.

    Security settings, a new card, gift cards (cash-like, instantly resold), from a small set of
    mobile-web networks.
    """
    script = (
        Step(("screen:login",)),
        Step(("/account/security",)),
        Step(("/account/addresses",), 0, 1, p=0.5),
        Step(("/account/payment/add",)),
        Step(("/p/giftcard/buy",)),
        Step(("/checkout/start",)),
        Step(("/checkout/payment",)),
        Step(("/checkout/confirm",)),
    )
    sessions = script_sessions(rng, n, script, VOCAB)
    ts = burst_times(rng, n, window.start_ms, window.end_ms, n_bursts=5, spread_minutes=120)
    victims = rng.choice(np.nonzero(market.tenure > 365)[0], size=n)
    quantity = rng.integers(1, 6, n)
    features = {
        "amount": choice(rng, {"50": 1, "100": 3, "200": 2}, n).astype(float) * quantity,
        "user_id": market.buyer[victims],
        "seller_id": np.full(n, "seller-giftcards", dtype=object),
        "seller_rating": np.full(n, 4.8),
        "is_prime": rng.random(n) < 0.8,
        "channel": np.full(n, "mweb", dtype=object),
        "ip_prefix": _pick(rng, _ip_prefixes(rng, 8), n),
        "quantity": quantity.astype(np.int64),
        "buyer_tenure_days": market.tenure[victims] + (ts - window.start_ms) // MS_PER_DAY,
    }
    gaps = human_gaps(rng, sessions, SITE.uniform_seconds(1.5), sigma=0.3, speed_sigma=0.1)
    return RINGS["giftcard_takeover"].cohort("giftcard_takeover", ts, sessions, gaps, features)


def _midnight_flash(rng: np.random.Generator, n: int, window: Window, market: _Market) -> Cohort:
    """A ring born in the last hours.

    Brand-new iOS accounts on two networks replay one recorded session to snap up the same flagship
    phone from big sellers. No labels yet.
    """
    script = tuple(
        Step((page,))
        for page in (
            "/p/deals/today",
            "/p/item/view",
            "/p/item/shipping",
            "/p/bid/place",
            "/p/cart",
            "/checkout/start",
            "/checkout/address",
            "/checkout/payment",
            "/checkout/confirm",
        )
    )
    sessions = script_sessions(rng, n, script, VOCAB)
    ts = rng.integers(window.flash_start_ms(4.0), window.end_ms, size=n)
    big = rng.integers(0, 3, n)
    template = rng.uniform(700, 3500, size=len(script))
    features = {
        "amount": np.round(rng.normal(1_199.0, 15.0, n), 2),
        "user_id": hex_ids(rng, "buyer-", n, digits=9),
        "seller_id": market.seller[big],
        "seller_rating": market.rating[big],
        "is_prime": np.zeros(n, bool),
        "channel": np.full(n, "ios", dtype=object),
        "ip_prefix": _pick(rng, _ip_prefixes(rng, 2), n),
        "quantity": np.ones(n, np.int64),
        "buyer_tenure_days": rng.integers(0, 2, n),
    }
    gaps = replayed_gaps(rng, sessions, template, rel_jitter=0.05)
    return RINGS["midnight_flash"].cohort("midnight_flash", ts, sessions, gaps, features)


# --------------------------------------------------------------------------- file formats


def _write_jsonl_gz(events: pa.Table, path: Path) -> None:
    """Events as JSON Lines with epoch-millisecond ``ts``, built column-wise by Arrow.

    Page names and ids are plain ASCII without quotes or backslashes (checked), so no JSON
    escaping is needed; gzip's header time is fixed so files are identical across runs, and
    level 1 because compression dominated generation time (figures in benchmarks/README.md).
    """
    for name in ("txn_id", "event", "user_id"):
        if pc.any(pc.match_substring_regex(events[name], r'["\\]')).as_py():
            raise ValueError(f"{name} needs JSON escaping")
    lines = pc.binary_join_element_wise(
        '{"txn_id":"',
        events["txn_id"],
        '","ts":',
        pc.cast(pc.cast(events["ts"], pa.int64()), pa.string()),
        ',"event":"',
        events["event"],
        '","user_id":"',
        events["user_id"],
        '"}\n',
        "",
    )
    with (
        path.open("wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0, filename="") as gz,
    ):
        for chunk in lines.chunks:
            offsets = np.frombuffer(chunk.buffers()[1], np.int32)[
                chunk.offset : chunk.offset + len(chunk) + 1
            ]
            gz.write(chunk.buffers()[2].to_pybytes()[offsets[0] : offsets[-1]])


def _iso_local_ts(transactions: pa.Table) -> pa.Table:
    """Replace ``ts`` by ISO-8601 strings in each buyer's local offset.

    For example ``2026-03-02T05:30:01.735+05:30``; the offset depends only on the buyer.
    """
    users = transactions["user_id"].to_numpy().astype(object)
    zone = pd.util.hash_array(users) % len(UTC_OFFSETS_MIN)
    offset_min = np.array(UTC_OFFSETS_MIN)[zone]
    names = [
        f"{'-' if m < 0 else '+'}{abs(m) // 60:02d}:{abs(m) % 60:02d}" for m in UTC_OFFSETS_MIN
    ]
    suffix = pa.array(np.array(names, dtype=object)[zone], pa.string())
    utc_ms = pc.cast(transactions["ts"], pa.int64()).to_numpy()
    local = pa.array(utc_ms + offset_min * 60_000, pa.timestamp("ms"))
    iso = pc.binary_join_element_wise(pc.strftime(local, format="%Y-%m-%dT%H:%M:%S"), suffix, "")
    return transactions.set_column(transactions.schema.get_field_index("ts"), "ts", iso)
