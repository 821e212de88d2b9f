"""A third world, for generalisation only: an online travel agency selling flights and hotels.

Written after Shoal's defaults were fixed and never used to tune them: its pages, features and
rings share nothing with the shop or the marketplace but the generator's building blocks.
Bookings carry a lead time (days to departure), trip length, party size, fare class and
payment method; fraud hides as:

* ``ghost_ticketing``: stolen cards buying one-way international tickets departing within two
  days for travellers whose names do not match the card, from a handful of agents' devices;
* ``points_drain``: hijacked loyalty accounts redeeming points for hotel nights from new
  devices, in waves;
* ``deposit_cycling``: a bot cycling cards through tiny hotel deposits with 3-D Secure
  challenges, in 300 ms steps, from a few accounts;
* ``booking_bot``: look-alike bookings, pages and features drawn from the travellers' own
  samplers, made by a bot clicking every 1.2 s (only the timing differs);
* ``fare_flash``: a brand-new ring in the last hours replaying one script on a promotional
  fare, with no labels yet.

Files written by :func:`generate_travel`: ``events.parquet`` (``txn_id``, ``ts``, ``event``,
``user_id``), ``transactions.parquet`` (``txn_id``, ``ts``, ``amount``, ``user_id``,
``account_age_days``, ``days_to_departure``, ``trip_nights``, ``travellers``,
``international``, ``one_way``, ``name_mismatch``, ``fare_class``, ``payment_method``,
``device_id``, ``bookings_24h``, ``label``, ``decision``) and ``truth.parquet``.
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
    diurnal_times,
    hex_ids,
    human_gaps,
    regular_gaps,
    replayed_gaps,
    ring_sizes,
    script_sessions,
)

# Page -> (popularity when browsing, typical seconds on it); 0 = reached only when booking.
PAGES: dict[str, tuple[float, float]] = {
    "landing": (5.0, 7.0),
    "flight_search": (6.0, 18.0),
    "flight_results": (7.0, 25.0),
    "filter_results": (2.5, 8.0),
    "fare_calendar": (1.5, 20.0),
    "fare_details": (4.0, 22.0),
    "seat_map": (1.5, 30.0),
    "baggage_options": (1.5, 15.0),
    "hotel_search": (4.0, 15.0),
    "hotel_results": (5.0, 25.0),
    "hotel_details": (4.5, 35.0),
    "hotel_photos": (2.0, 20.0),
    "guest_reviews": (2.0, 45.0),
    "map_view": (1.2, 25.0),
    "room_select": (2.5, 20.0),
    "car_rental": (0.6, 20.0),
    "destination_guide": (0.8, 60.0),
    "promo_fares": (1.0, 12.0),
    "travel_alerts": (0.3, 20.0),
    "visa_info": (0.3, 40.0),
    "sign_in": (1.5, 10.0),
    "my_trips": (1.0, 12.0),
    "manage_booking": (0.6, 20.0),
    "loyalty_account": (0.6, 15.0),
    "redeem_points": (0.2, 20.0),
    "support_chat": (0.2, 60.0),
    "trip_summary": (0.0, 15.0),
    "traveller_details": (0.0, 50.0),
    "travel_insurance": (0.0, 12.0),
    "payment_details": (0.0, 35.0),
    "secure_challenge": (0.0, 20.0),
    "booking_confirmed": (0.0, 4.0),
}
FLOWS: dict[str, dict[str, float]] = {
    "landing": {"flight_search": 3, "hotel_search": 2, "promo_fares": 0.5, "sign_in": 1},
    "flight_search": {"flight_results": 1},
    "flight_results": {"fare_details": 3, "filter_results": 1.5, "fare_calendar": 0.7},
    "filter_results": {"flight_results": 1},
    "fare_calendar": {"flight_results": 1},
    "fare_details": {"seat_map": 1, "baggage_options": 1, "flight_results": 1, "hotel_search": 0.5},
    "seat_map": {"baggage_options": 1, "fare_details": 0.5},
    "hotel_search": {"hotel_results": 1},
    "hotel_results": {"hotel_details": 3, "map_view": 0.7, "hotel_results": 0.5},
    "hotel_details": {"hotel_photos": 1.5, "guest_reviews": 1.5, "room_select": 2},
    "hotel_photos": {"hotel_details": 1, "room_select": 0.5},
    "guest_reviews": {"hotel_details": 1, "room_select": 0.7},
    "room_select": {"car_rental": 0.3, "hotel_details": 0.5},
    "promo_fares": {"flight_results": 2, "hotel_results": 1},
    "sign_in": {"my_trips": 1, "landing": 1, "loyalty_account": 0.5},
    "my_trips": {"manage_booking": 1, "flight_search": 1},
    "loyalty_account": {"redeem_points": 0.4, "hotel_search": 1},
}
ARCHETYPES: dict[str, Archetype] = {
    "flyer": Archetype(
        0.40,
        entry={"flight_search": 3, "landing": 2, "promo_fares": 0.5},
        likes={"flight_results": 2, "fare_details": 2, "fare_calendar": 2},
        log_length=(2.5, 0.5),
    ),
    "stayer": Archetype(
        0.30,
        entry={"hotel_search": 3, "landing": 1},
        likes={"hotel_results": 2, "hotel_details": 2, "guest_reviews": 2},
        log_length=(2.6, 0.5),
    ),
    "planner": Archetype(
        0.15,
        entry={"landing": 2, "destination_guide": 1},
        likes={"destination_guide": 3, "map_view": 2, "visa_info": 2, "car_rental": 2},
        log_length=(3.0, 0.45),
    ),
    "member": Archetype(
        0.15,
        entry={"sign_in": 4},
        likes={"my_trips": 3, "loyalty_account": 2, "manage_booking": 2},
        log_length=(1.8, 0.5),
    ),
}
CHECKOUT: tuple[Step, ...] = (
    Step(("trip_summary",)),
    Step(("traveller_details",)),
    Step(("travel_insurance",), 0, 1, p=0.35),
    Step(("payment_details",)),
    Step(("secure_challenge",), 0, 1, p=0.25),
    Step(("booking_confirmed",)),
)
SITE = Site(PAGES, FLOWS, ARCHETYPES, CHECKOUT, flow_share=0.7, max_events=60)
VOCAB = SITE.index

PAYMENT = {"card": 70, "wallet": 18, "points": 4, "voucher": 3, "bank_transfer": 5}
FARE_CLASS = {"basic": 45, "standard": 35, "flex": 12, "business": 6, "hotel_only": 2}
BASE_FRAUD_RATE = 0.003

RINGS: dict[str, Ring] = {
    "ghost_ticketing": Ring(0.012, 0.15),
    "points_drain": Ring(0.010, 0.05),
    "deposit_cycling": Ring(0.014, 0.25),
    "booking_bot": Ring(0.010, 0.0),  # looks like any traveller to the engine
    "fare_flash": Ring(0.010, 0.02),
}


def generate_travel(
    out_dir: str | Path,
    n_transactions: int = 50_000,
    seed: int = 0,
    window_hours: float = 72.0,
    label_maturity_hours: float = 24.0,
) -> SyntheticPaths:
    """Write the travel agency's ``events``/``transactions``/``truth`` Parquet files."""
    tables = travel_tables(n_transactions, seed, window_hours, label_maturity_hours)
    return tables.write_parquet(out_dir)


def travel_tables(
    n_transactions: int = 50_000,
    seed: int = 0,
    window_hours: float = 72.0,
    label_maturity_hours: float = 24.0,
) -> SyntheticTables:
    """Build the travel agency's tables in memory (what :func:`generate_travel` writes)."""
    rng = np.random.default_rng(seed)
    window = Window.of(window_hours, label_maturity_hours)
    sizes = ring_sizes(RINGS, n_transactions)
    n_lookalike = n_transactions - sum(sizes.values()) + sizes["booking_bot"]
    travellers = _Travellers(rng, n_lookalike, window)
    normal, scattered, bot = carve(
        rng,
        travellers.cohort(rng, n_lookalike),
        {
            "scattered_fraud": round(BASE_FRAUD_RATE * n_transactions),
            "booking_bot": sizes["booking_bot"],
        },
    )
    cohorts = [
        normal,
        _scattered(rng, scattered),
        bot.as_fraud(gaps_ms=regular_gaps(rng, bot.sessions, 1_200.0, 60.0)),
        _ghost_ticketing(rng, sizes["ghost_ticketing"], window),
        _points_drain(rng, sizes["points_drain"], window, travellers),
        _deposit_cycling(rng, sizes["deposit_cycling"], window),
        _fare_flash(rng, sizes["fare_flash"], window),
    ]
    velocity = Velocity("bookings_24h", key="device_id", hours=24.0)
    return assemble(rng, cohorts, SITE.vocabulary, window, velocity)


class _Travellers:
    """The agency's customer accounts and how they normally book."""

    def __init__(self, rng: np.random.Generator, n_transactions: int, window: Window) -> None:
        self.window = window
        n = max(50, int(0.7 * n_transactions))
        self.user_id = hex_ids(rng, "c", n, digits=10)
        self.age_days = np.where(
            rng.random(n) < 0.1,
            rng.uniform(0, 14, n),
            np.minimum(rng.lognormal(np.log(700), 0.9, n), 6000),
        )
        self.device = hex_ids(rng, "h", n)

    def cohort(self, rng: np.random.Generator, n: int) -> Cohort:
        """Ordinary bookings; the base of the look-alike cohorts too."""
        sessions = SITE.sessions(rng, n)
        ts = diurnal_times(rng, n, self.window)
        user = rng.integers(0, len(self.user_id), n)
        fare = choice(rng, FARE_CLASS, n)
        travellers = 1 + rng.binomial(3, 0.3, n)
        nights = np.maximum(1, np.round(rng.lognormal(np.log(4), 0.6, n))).astype(np.int64)
        features = {
            "amount": np.round(rng.lognormal(np.log(380), 0.7, n) * travellers**0.7, 2),
            "user_id": self.user_id[user],
            "account_age_days": np.round(
                self.age_days[user] + (ts - self.window.start_ms) / MS_PER_DAY, 3
            ),
            "days_to_departure": np.round(rng.gamma(2.0, 18.0, n), 1),
            "trip_nights": nights,
            "travellers": travellers,
            "international": rng.random(n) < 0.35,
            "one_way": rng.random(n) < 0.2,
            "name_mismatch": rng.random(n) < 0.08,  # booking for family and colleagues
            "fare_class": fare,
            "payment_method": choice(rng, PAYMENT, n),
            "device_id": np.where(rng.random(n) < 0.9, self.device[user], hex_ids(rng, "h", n)),
        }
        gaps = human_gaps(rng, sessions, SITE.page_seconds)
        decline_p = np.full(n, 0.02)
        return Cohort("normal", np.zeros(n, bool), ts, sessions, gaps, features, decline_p)


def _scattered(rng: np.random.Generator, c: Cohort) -> Cohort:
    """Lone fraudsters: ordinary browsing, last-minute and pricier bookings more often."""
    n = len(c.ts_ms)
    features = dict(c.features)
    features["days_to_departure"] = np.round(rng.uniform(0, 10, n), 1)
    features["name_mismatch"] = rng.random(n) < 0.4
    return c.as_fraud(features=features, decline_p=np.full(n, 0.3))


def _ghost_ticketing(rng: np.random.Generator, n: int, window: Window) -> Cohort:
    """Agents selling tickets bought with stolen cards: one-way, abroad, leaving at once."""
    script = (
        Step(("flight_search",)),
        Step(("flight_results",), 1, 2),
        Step(("fare_details",)),
        Step(("trip_summary",)),
        Step(("traveller_details",)),
        Step(("payment_details",)),
        Step(("booking_confirmed",)),
    )
    sessions = script_sessions(rng, n, script, VOCAB)
    ts = burst_times(rng, n, window.start_ms, window.end_ms, n_bursts=6, spread_minutes=100)
    devices = hex_ids(rng, "h", 8)
    features = {
        "amount": np.round(rng.lognormal(np.log(1100), 0.3, n), 2),
        "user_id": hex_ids(rng, "c", n, digits=10),
        "account_age_days": np.round(rng.uniform(0, 3, n), 3),
        "days_to_departure": np.round(rng.uniform(0.1, 2.0, n), 1),
        "trip_nights": np.zeros(n, np.int64),
        "travellers": np.ones(n, np.int64),
        "international": rng.random(n) < 0.95,
        "one_way": rng.random(n) < 0.9,
        "name_mismatch": rng.random(n) < 0.9,
        "fare_class": choice(rng, {"standard": 2, "flex": 2, "business": 1}, n),
        "payment_method": np.full(n, "card", dtype=object),
        "device_id": devices[rng.integers(0, len(devices), n)],
    }
    gaps = human_gaps(rng, sessions, SITE.uniform_seconds(4.0), sigma=0.3, speed_sigma=0.1)
    return RINGS["ghost_ticketing"].cohort("ghost_ticketing", ts, sessions, gaps, features)


def _points_drain(
    rng: np.random.Generator, n: int, window: Window, travellers: _Travellers
) -> Cohort:
    """Hijacked loyalty accounts of long-standing members spending their points on hotels."""
    script = (
        Step(("sign_in",)),
        Step(("loyalty_account",)),
        Step(("redeem_points",), 1, 3),
        Step(("hotel_search",)),
        Step(("hotel_results",)),
        Step(("hotel_details",)),
        Step(("room_select",)),
        Step(("trip_summary",)),
        Step(("traveller_details",)),
        Step(("payment_details",)),
        Step(("booking_confirmed",)),
    )
    sessions = script_sessions(rng, n, script, VOCAB)
    ts = burst_times(rng, n, window.start_ms, window.end_ms, n_bursts=4, spread_minutes=80)
    victims = rng.choice(np.nonzero(travellers.age_days > 365)[0], size=n)
    devices = hex_ids(rng, "h", 5)
    features = {
        "amount": np.round(rng.uniform(0, 40, n), 2),  # taxes only: the points pay
        "user_id": travellers.user_id[victims],
        "account_age_days": np.round(
            travellers.age_days[victims] + (ts - window.start_ms) / MS_PER_DAY, 3
        ),
        "days_to_departure": np.round(rng.uniform(1, 20, n), 1),
        "trip_nights": rng.integers(2, 6, n),
        "travellers": 1 + rng.binomial(1, 0.5, n),
        "international": rng.random(n) < 0.5,
        "one_way": np.zeros(n, bool),
        "name_mismatch": rng.random(n) < 0.7,
        "fare_class": np.full(n, "hotel_only", dtype=object),
        "payment_method": np.full(n, "points", dtype=object),
        "device_id": devices[rng.integers(0, len(devices), n)],
    }
    gaps = human_gaps(rng, sessions, SITE.uniform_seconds(2.5), sigma=0.35, speed_sigma=0.1)
    return RINGS["points_drain"].cohort("points_drain", ts, sessions, gaps, features)


def _deposit_cycling(rng: np.random.Generator, n: int, window: Window) -> Cohort:
    """Cycle cards through small refundable hotel deposits, a challenge after each card."""
    script = (
        Step(("hotel_details",)),
        Step(("room_select",)),
        Step(("payment_details", "secure_challenge"), 2, 6),
        Step(("booking_confirmed",)),
    )
    sessions = script_sessions(rng, n, script, VOCAB)
    ts = burst_times(rng, n, window.start_ms, window.end_ms, n_bursts=3, spread_minutes=45)
    accounts = hex_ids(rng, "c", 10, digits=10)
    acct = rng.integers(0, len(accounts), n)
    age0 = rng.uniform(3, 40, len(accounts))
    features = {
        "amount": np.round(rng.uniform(5, 30, n), 2),
        "user_id": accounts[acct],
        "account_age_days": np.round(age0[acct] + (ts - window.start_ms) / MS_PER_DAY, 3),
        "days_to_departure": np.round(rng.uniform(20, 90, n), 1),
        "trip_nights": np.ones(n, np.int64),
        "travellers": np.ones(n, np.int64),
        "international": rng.random(n) < 0.3,
        "one_way": np.zeros(n, bool),
        "name_mismatch": rng.random(n) < 0.5,
        "fare_class": np.full(n, "hotel_only", dtype=object),
        "payment_method": np.full(n, "card", dtype=object),
        "device_id": hex_ids(rng, "h", 2)[rng.integers(0, 2, n)],
    }
    gaps = regular_gaps(rng, sessions, 300.0, 40.0)
    return RINGS["deposit_cycling"].cohort("deposit_cycling", ts, sessions, gaps, features)


def _fare_flash(rng: np.random.Generator, n: int, window: Window) -> Cohort:
    """Replay one recorded promo-fare booking from new accounts in the last hours."""
    pages = ("landing", "promo_fares", "flight_results", "fare_details", "seat_map",
             "trip_summary", "traveller_details", "payment_details",
             "booking_confirmed")  # fmt: skip
    script = tuple(Step((page,)) for page in pages)
    sessions = script_sessions(rng, n, script, VOCAB)
    ts = rng.integers(window.flash_start_ms(5.0), window.end_ms, size=n)
    template = rng.uniform(1_000, 5_000, size=len(script))
    features = {
        "amount": choice(rng, {"149.0": 3, "199.0": 2, "249.0": 1}, n).astype(float),
        "user_id": hex_ids(rng, "c", n, digits=10),
        "account_age_days": np.round(rng.uniform(0, 1, n), 3),
        "days_to_departure": np.round(rng.uniform(5, 15, n), 1),
        "trip_nights": rng.integers(2, 4, n),
        "travellers": np.ones(n, np.int64),
        "international": np.ones(n, bool),
        "one_way": np.zeros(n, bool),
        "name_mismatch": rng.random(n) < 0.5,
        "fare_class": np.full(n, "basic", dtype=object),
        "payment_method": choice(rng, {"card": 1, "wallet": 1}, n),
        "device_id": hex_ids(rng, "h", 3)[rng.integers(0, 3, n)],
    }
    gaps = replayed_gaps(rng, sessions, template, rel_jitter=0.05)
    return RINGS["fare_flash"].cohort("fare_flash", ts, sessions, gaps, features)
