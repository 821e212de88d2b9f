"""The demo world: a web shop's click-stream with six fraud rings hidden in normal traffic.

Each ring differs from shoppers in a way a risk analyst would recognise, and two of them
differ *only* in dwell times, which is the case FinDeepBehaviorCluster (arXiv 2101.04285)
makes for a time-aware sequence encoder: their pages and intuitive features are drawn from
the very samplers used for normal shoppers. ``timing_bot`` clicks at machine speed (its dwell
*distribution* gives it away); ``rhythm_bot`` spends human delays on the wrong pages (only the
pairing of page and dwell, i.e. the sequence, gives it away).

Files written by :func:`generate_shop`: ``events.parquet`` (``txn_id``, ``ts``, ``event``,
``user_id``), ``transactions.parquet`` (``txn_id``, ``ts``, ``amount``, ``user_id``,
``account_age_days``, ``country_mismatch``, ``card_country``, ``device_id``, ``email_domain``,
``is_new_shipping_address``, ``txn_count_24h``, ``label``, ``decision``) and ``truth.parquet``
(``txn_id``, ``pattern``, ``is_fraud``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

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

# Page -> (popularity when browsing, typical seconds spent on it). Popularity 0 means the page
# is only reached through a checkout script. Some pages are rare on purpose: a ~40-token
# vocabulary with a long tail, as in the paper.
PAGES: dict[str, tuple[float, float]] = {
    "home": (6.0, 6.0),
    "search": (5.0, 5.0),
    "search_results": (6.0, 12.0),
    "category": (5.0, 10.0),
    "subcategory": (3.0, 10.0),
    "product_view": (12.0, 25.0),
    "product_reviews": (2.5, 40.0),
    "product_images": (2.5, 15.0),
    "size_guide": (0.4, 20.0),
    "compare": (0.3, 30.0),
    "add_to_cart": (3.0, 3.0),
    "remove_from_cart": (0.6, 3.0),
    "view_cart": (2.0, 10.0),
    "wishlist": (1.0, 8.0),
    "recommendations": (2.0, 10.0),
    "deals": (1.5, 12.0),
    "brand_page": (1.0, 12.0),
    "store_locator": (0.1, 15.0),
    "help": (0.4, 20.0),
    "faq": (0.3, 30.0),
    "contact_us": (0.15, 25.0),
    "login": (1.5, 12.0),
    "register": (0.4, 40.0),
    "account": (0.8, 10.0),
    "order_history": (0.6, 15.0),
    "track_order": (0.5, 12.0),
    "returns": (0.3, 25.0),
    "newsletter_signup": (0.1, 10.0),
    "loyalty_program": (0.2, 20.0),
    "gift_card": (0.3, 15.0),
    "password_reset": (0.1, 30.0),
    "change_address": (0.1, 35.0),
    "checkout": (0.0, 8.0),
    "shipping_info": (0.0, 35.0),
    "apply_coupon": (0.0, 15.0),
    "add_card": (0.0, 40.0),
    "payment_info": (0.0, 30.0),
    "pay_attempt": (0.0, 5.0),
    "review_order": (0.0, 15.0),
    "place_order": (0.0, 3.0),
}
FLOWS: dict[str, dict[str, float]] = {
    "home": {"search": 3, "category": 3, "deals": 1, "recommendations": 1, "login": 1},
    "search": {"search_results": 1},
    "search_results": {"product_view": 4, "search": 1.5, "search_results": 0.7},
    "category": {"subcategory": 2, "product_view": 3, "brand_page": 0.5},
    "subcategory": {"product_view": 3, "subcategory": 0.5},
    "product_view": {
        "product_reviews": 1.5,
        "product_images": 1.5,
        "add_to_cart": 2,
        "search": 1,
        "product_view": 1.5,
        "recommendations": 0.7,
        "size_guide": 0.2,
        "compare": 0.2,
    },
    "product_reviews": {"product_view": 1, "add_to_cart": 1},
    "product_images": {"product_view": 1, "add_to_cart": 1, "product_reviews": 0.5},
    "add_to_cart": {"view_cart": 1, "product_view": 1, "search": 1},
    "view_cart": {"remove_from_cart": 0.3, "product_view": 1},
    "recommendations": {"product_view": 3},
    "deals": {"product_view": 3, "category": 1},
    "brand_page": {"product_view": 3},
    "login": {"account": 1, "home": 1, "order_history": 0.5},
    "account": {"order_history": 1, "wishlist": 1, "home": 0.5},
    "order_history": {"track_order": 1, "returns": 0.3, "product_view": 1},
    "wishlist": {"product_view": 2, "add_to_cart": 1},
    "help": {"faq": 1, "contact_us": 0.5, "returns": 0.5},
}
ARCHETYPES: dict[str, Archetype] = {
    "browser": Archetype(
        0.35,
        entry={"home": 3, "category": 2, "deals": 1},
        likes={"category": 2, "subcategory": 2, "recommendations": 2, "deals": 2},
        log_length=(2.9, 0.55),
    ),
    "searcher": Archetype(
        0.30,
        entry={"search": 3, "home": 1},
        likes={"search": 3, "search_results": 3},
        log_length=(2.4, 0.5),
    ),
    "direct": Archetype(
        0.15,
        entry={"product_view": 4, "view_cart": 1},
        likes={"add_to_cart": 2},
        log_length=(0.4, 0.6),
    ),
    "returning": Archetype(
        0.20,
        entry={"login": 4, "home": 1},
        likes={"account": 3, "order_history": 3, "wishlist": 3, "track_order": 2},
        log_length=(1.7, 0.55),
    ),
}

CHECKOUT: tuple[Step, ...] = (
    Step(("view_cart",), 0, 1, p=0.6),
    Step(("checkout",)),
    Step(("shipping_info",), 0, 1, p=0.55),
    Step(("apply_coupon",), 0, 1, p=0.12),
    Step(("add_card",), 0, 1, p=0.08),
    Step(("payment_info",)),
    Step(("pay_attempt",), 0, 1, p=0.05),
    Step(("review_order",), 0, 1, p=0.4),
    Step(("place_order",)),
)
SITE = Site(PAGES, FLOWS, ARCHETYPES, CHECKOUT, flow_share=0.7, max_events=60)
VOCABULARY = SITE.vocabulary
VOCAB = SITE.index

CARD_COUNTRIES = {
    "US": 55,
    "GB": 12,
    "DE": 8,
    "FR": 6,
    "CA": 6,
    "NL": 3,
    "BR": 3,
    "IN": 3,
    "ES": 2,
    "CN": 1,
    "RO": 0.5,
    "NG": 0.5,
}
EMAIL_DOMAINS = {
    "gmail.com": 45,
    "yahoo.com": 12,
    "outlook.com": 12,
    "hotmail.com": 8,
    "icloud.com": 8,
    "aol.com": 3,
    "protonmail.com": 3,
    "gmx.de": 3,
    "mail.ru": 1.5,
    "yandex.ru": 1,
    "mailinator.com": 0.3,
    "guerrillamail.com": 0.2,
}
DISPOSABLE_EMAIL = {"mailinator.com": 2, "guerrillamail.com": 1, "gmail.com": 1}
BASE_FRAUD_RATE = 0.003


RINGS: dict[str, Ring] = {
    "account_takeover": Ring(0.012, 0.12),
    "card_testing": Ring(0.016, 0.30),
    "timing_bot": Ring(0.010, 0.0),  # caught like normal traffic: the engine sees nothing
    "reshipping": Ring(0.012, 0.08),
    "flash_ring": Ring(0.010, 0.03),
    "rhythm_bot": Ring(0.010, 0.0),  # human delays, wrong pages: the engine sees nothing
}


def generate_shop(
    out_dir: str | Path,
    n_transactions: int = 50_000,
    seed: int = 0,
    window_hours: float = 72.0,
    label_maturity_hours: float = 24.0,
) -> SyntheticPaths:
    """Write the shop's ``events``/``transactions``/``truth`` Parquet files under ``out_dir``."""
    tables = shop_tables(n_transactions, seed, window_hours, label_maturity_hours)
    return tables.write_parquet(out_dir)


def shop_tables(
    n_transactions: int = 50_000,
    seed: int = 0,
    window_hours: float = 72.0,
    label_maturity_hours: float = 24.0,
) -> SyntheticTables:
    """The shop's tables in memory (what :func:`generate_shop` writes)."""
    rng = np.random.default_rng(seed)
    window = Window.of(window_hours, label_maturity_hours)
    sizes = ring_sizes(RINGS, n_transactions)
    n_normal = n_transactions - sum(sizes.values())
    n_scattered = round(BASE_FRAUD_RATE * n_transactions)

    n_lookalike = n_normal + sizes["timing_bot"] + sizes["rhythm_bot"]
    # rhythm_bot (added last) draws from its own stream and is carved last out of the
    # shoppers, so every other cohort is exactly what it was before it existed.
    rhythm_rng = rng.spawn(1)[0]
    shoppers = _Shoppers(rng, n_lookalike, window)
    normal, scattered, timing, rhythm = carve(
        rng,
        shoppers.cohort(rng, n_lookalike),
        {
            "scattered_fraud": n_scattered,
            "timing_bot": sizes["timing_bot"],
            "rhythm_bot": sizes["rhythm_bot"],
        },
    )
    cohorts = [
        normal,
        _scattered(rng, scattered),
        _timing_bot(rng, timing),
        _account_takeover(rng, sizes["account_takeover"], window, shoppers),
        _card_testing(rng, sizes["card_testing"], window),
        _reshipping(rng, sizes["reshipping"], window),
        _flash_ring(rng, sizes["flash_ring"], window),
        _rhythm_bot(rhythm_rng, rhythm),
    ]
    velocity = Velocity("txn_count_24h", key="device_id", hours=24.0)
    return assemble(rng, cohorts, VOCABULARY, window, velocity)


# --------------------------------------------------------------------------- normal traffic


class _Shoppers:
    """The shop's customer accounts: normal traffic buys from them, takeovers steal them."""

    def __init__(self, rng: np.random.Generator, n_transactions: int, window: Window) -> None:
        self.window = window
        n = max(50, int(0.6 * n_transactions))
        self.user_id = hex_ids(rng, "u", n, digits=10)
        new = rng.random(n) < 0.12
        self.age_days = np.where(
            new, rng.uniform(0, 10, n), np.minimum(rng.lognormal(np.log(400), 1.0, n), 5000)
        )
        self.card_country = choice(rng, CARD_COUNTRIES, n)
        self.email_domain = choice(rng, EMAIL_DOMAINS, n)
        self.device = hex_ids(rng, "d", n)
        self.second_device = np.where(rng.random(n) < 0.25, hex_ids(rng, "d", n), self.device)

    def draw_users(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Repeat customers: a fifth of purchases come from a tenth of the accounts."""
        n_users = len(self.user_id)
        loyal = rng.random(n) < 0.2
        return np.where(loyal, rng.integers(0, n_users // 10, n), rng.integers(0, n_users, n))

    def cohort(self, rng: np.random.Generator, n: int) -> Cohort:
        """Normal transactions of these accounts; the base for look-alike cohorts too."""
        sessions = SITE.sessions(rng, n)
        ts = diurnal_times(rng, n, self.window)
        user = self.draw_users(rng, n)
        age = self.age_days[user] + (ts - self.window.start_ms) / MS_PER_DAY
        mismatch = rng.random(n) < 0.03
        features = {
            "amount": np.round(rng.lognormal(np.log(45), 0.9, n), 2),
            "user_id": self.user_id[user],
            "account_age_days": np.round(age, 3),
            "country_mismatch": mismatch,
            "card_country": self.card_country[user],
            "device_id": np.where(rng.random(n) < 0.3, self.second_device[user], self.device[user]),
            "email_domain": self.email_domain[user],
            "is_new_shipping_address": rng.random(n) < np.where(age < 3, 0.6, 0.05),
        }
        gaps = human_gaps(rng, sessions, SITE.page_seconds)
        decline_p = 0.01 + 0.05 * mismatch
        return Cohort("normal", np.zeros(n, bool), ts, sessions, gaps, features, decline_p)


# --------------------------------------------------------------------------- fraud


def _scattered(rng: np.random.Generator, c: Cohort) -> Cohort:
    """Lone fraudsters among normal traffic: normal browsing, somewhat riskier purchases."""
    n = len(c.ts_ms)
    features = dict(c.features)
    features["amount"] = np.round(c.features["amount"] * rng.uniform(1.5, 4.0, n), 2)
    features["country_mismatch"] = rng.random(n) < 0.35
    features["is_new_shipping_address"] = rng.random(n) < 0.5
    return c.as_fraud(features=features, decline_p=np.full(n, 0.35))


def _timing_bot(rng: np.random.Generator, c: Cohort) -> Cohort:
    """Bots replaying real shoppers' page paths at machine cadence (~600 ms per page).

    Everything but the gaps is the normal shoppers', including the engine's decision rule.
    """
    return c.as_fraud(gaps_ms=regular_gaps(rng, c.sessions, 600.0, 25.0))


def _rhythm_bot(rng: np.random.Generator, c: Cohort) -> Cohort:
    """Bots that sleep a delay drawn from recorded human ones before each click, whatever the page.

    A human's delays, in a random order (see ``content_blind_gaps``).

    Pages, features, the set of delays and the engine's decision are the shoppers'; only
    which page each delay is spent on differs.
    """
    return c.as_fraud(gaps_ms=content_blind_gaps(rng, c.sessions, c.gaps_ms))


def _account_takeover(
    rng: np.random.Generator, n: int, window: Window, shoppers: _Shoppers
) -> Cohort:
    """Stolen logins of established customers.

    Log in, reset password or change address, pay fast, ship abroad, from the ring's handful of
    devices.
    """
    script = (
        Step(("login",)),
        Step(("account",), 0, 1, p=0.4),
        Step(("password_reset",), 0, 1, p=0.6),
        Step(("change_address",)),
        Step(("checkout",)),
        Step(("shipping_info",), 0, 1, p=0.3),
        Step(("payment_info",)),
        Step(("place_order",)),
    )
    sessions = script_sessions(rng, n, script, VOCAB)
    ts = burst_times(rng, n, window.start_ms, window.end_ms, n_bursts=4, spread_minutes=90)
    victims = rng.choice(np.nonzero(shoppers.age_days > 180)[0], size=n)
    devices = hex_ids(rng, "d", 6)
    features = {
        "amount": np.round(rng.lognormal(np.log(320), 0.5, n), 2),
        "user_id": shoppers.user_id[victims],
        "account_age_days": np.round(
            shoppers.age_days[victims] + (ts - window.start_ms) / MS_PER_DAY, 3
        ),
        "country_mismatch": rng.random(n) < 0.85,
        "card_country": shoppers.card_country[victims],
        "device_id": devices[rng.integers(0, len(devices), n)],
        "email_domain": shoppers.email_domain[victims],
        "is_new_shipping_address": rng.random(n) < 0.95,
    }
    gaps = human_gaps(rng, sessions, SITE.uniform_seconds(1.8), sigma=0.35, speed_sigma=0.1)
    return RINGS["account_takeover"].cohort("account_takeover", ts, sessions, gaps, features)


def _card_testing(rng: np.random.Generator, n: int, window: Window) -> Cohort:
    """A bot validating stolen cards.

    ``add_card``/``pay_attempt`` loops in ~200 ms, tiny amounts, a few accounts and devices
    doing many transactions each.
    """
    script = (
        Step(("login",), 0, 1, p=0.5),
        Step(("add_card", "pay_attempt"), 2, 8),
        Step(("place_order",)),
    )
    sessions = script_sessions(rng, n, script, VOCAB)
    ts = burst_times(rng, n, window.start_ms, window.end_ms, n_bursts=3, spread_minutes=40)
    accounts = hex_ids(rng, "u", 12, digits=10)
    devices = hex_ids(rng, "d", 3)
    acct = rng.integers(0, len(accounts), n)
    age0 = rng.uniform(5, 60, len(accounts))
    features = {
        "amount": np.round(rng.uniform(0.5, 3.0, n), 2),
        "user_id": accounts[acct],
        "account_age_days": np.round(age0[acct] + (ts - window.start_ms) / MS_PER_DAY, 3),
        "country_mismatch": rng.random(n) < 0.5,
        "card_country": choice(rng, CARD_COUNTRIES, n),
        "device_id": devices[rng.integers(0, len(devices), n)],
        "email_domain": choice(rng, DISPOSABLE_EMAIL, n),
        "is_new_shipping_address": rng.random(n) < 0.2,
    }
    gaps = regular_gaps(rng, sessions, 200.0, 30.0)
    return RINGS["card_testing"].cohort("card_testing", ts, sessions, gaps, features)


def _reshipping(rng: np.random.Generator, n: int, window: Window) -> Cohort:
    """Triangulation.

    Fresh accounts on shared devices buy expensive goods straight from search to checkout and ship
    to drop addresses.
    """
    script = (
        Step(("search",)),
        Step(("search_results",)),
        Step(("product_view",), 1, 2),
        Step(("add_to_cart",)),
        Step(("checkout",)),
        Step(("shipping_info",)),
        Step(("payment_info",)),
        Step(("place_order",)),
    )
    sessions = script_sessions(rng, n, script, VOCAB)
    ts = burst_times(rng, n, window.start_ms, window.end_ms, n_bursts=8, spread_minutes=120)
    devices = hex_ids(rng, "d", 10)
    features = {
        "amount": np.round(rng.lognormal(np.log(900), 0.35, n), 2),
        "user_id": hex_ids(rng, "u", n, digits=10),
        "account_age_days": np.round(rng.uniform(0, 4, n), 3),
        "country_mismatch": rng.random(n) < 0.3,
        "card_country": choice(rng, CARD_COUNTRIES, n),
        "device_id": devices[rng.integers(0, len(devices), n)],
        "email_domain": choice(rng, {"gmail.com": 2, "protonmail.com": 1, "outlook.com": 1}, n),
        "is_new_shipping_address": rng.random(n) < 0.9,
    }
    gaps = human_gaps(rng, sessions, SITE.uniform_seconds(3.0), sigma=0.3, speed_sigma=0.1)
    return RINGS["reshipping"].cohort("reshipping", ts, sessions, gaps, features)


def _flash_ring(rng: np.random.Generator, n: int, window: Window) -> Cohort:
    """A new ring in the last hours.

    One recorded gift-card script replayed from a few devices by brand-new accounts; too young for
    any chargeback to have arrived.
    """
    script = tuple(
        Step((page,))
        for page in (
            "home",
            "deals",
            "gift_card",
            "product_view",
            "add_to_cart",
            "view_cart",
            "checkout",
            "apply_coupon",
            "payment_info",
            "place_order",
        )
    )
    sessions = script_sessions(rng, n, script, VOCAB)
    ts = rng.integers(window.flash_start_ms(6.0), window.end_ms, size=n)
    devices = hex_ids(rng, "d", 3)
    template = rng.uniform(800, 4000, size=len(script))
    features = {
        "amount": choice(rng, {"100.0": 2, "200.0": 3, "250.0": 1, "500.0": 2}, n).astype(float),
        "user_id": hex_ids(rng, "u", n, digits=10),
        "account_age_days": np.round(rng.uniform(0, 1.5, n), 3),
        "country_mismatch": rng.random(n) < 0.6,
        "card_country": choice(rng, {"US": 3, "GB": 1, "BR": 1}, n),
        "device_id": devices[rng.integers(0, len(devices), n)],
        "email_domain": choice(rng, {"protonmail.com": 3, "gmail.com": 1}, n),
        "is_new_shipping_address": np.ones(n, bool),
    }
    gaps = replayed_gaps(rng, sessions, template, rel_jitter=0.04)
    return RINGS["flash_ring"].cohort("flash_ring", ts, sessions, gaps, features)
