"""Mechanics shared by the synthetic generators: sessions, dwell, time, labels, assembly.

Each generator (``shop``, ``marketplace``) declares *what* its world looks like (pages,
archetypes, rings, feature distributions); this module only knows *how* to turn such a
declaration into tables, fully vectorised: sessions are padded ``(n, width)`` token matrices
(``-1`` = padding) so that 50k transactions / ~1M events build in a few seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

MS_PER_S = 1_000
MS_PER_HOUR = 3_600_000
MS_PER_DAY = 86_400_000

# A fixed anchor keeps files byte-identical across runs with the same seed.
WINDOW_START_MS = 1_772_409_600_000  # 2026-03-02T00:00:00Z

PAD = -1


@dataclass(frozen=True)
class SyntheticPaths:
    """Where a generator wrote its three files; ``truth`` is for evaluation only."""

    events: Path
    transactions: Path
    truth: Path


@dataclass(frozen=True)
class SyntheticTables:
    """The generated tables in memory, before any file format is chosen."""

    events: pa.Table
    transactions: pa.Table
    truth: pa.Table

    def write_parquet(self, out_dir: str | Path) -> SyntheticPaths:
        """Write the three tables as Parquet files under ``out_dir``.

        Returns
        -------
        SyntheticPaths
            ``events.parquet``, ``transactions.parquet`` and ``truth.parquet``.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = SyntheticPaths(
            out / "events.parquet", out / "transactions.parquet", out / "truth.parquet"
        )
        pq.write_table(self.events, paths.events)
        pq.write_table(self.transactions, paths.transactions)
        pq.write_table(self.truth, paths.truth)
        return paths


@dataclass(frozen=True)
class Window:
    """The observation window and the label-maturity horizon at its end."""

    start_ms: int
    end_ms: int
    maturity_ms: int

    @classmethod
    def of(cls, window_hours: float, label_maturity_hours: float) -> Window:
        """A window ``window_hours`` long whose labels mature after ``label_maturity_hours``."""
        if window_hours <= 0 or label_maturity_hours < 0:
            raise ValueError("window_hours must be > 0 and label_maturity_hours >= 0")
        end = WINDOW_START_MS + round(window_hours * MS_PER_HOUR)
        return cls(WINDOW_START_MS, end, round(label_maturity_hours * MS_PER_HOUR))

    def flash_start_ms(self, hours: float) -> int:
        """Start of a flash ring's burst.

        Within the last ``hours``, and never so early that any of it could carry a mature label (the
        point of a flash ring is that it is new).
        """
        span = min(hours * MS_PER_HOUR, (self.end_ms - self.start_ms) / 2)
        if self.maturity_ms > 0:
            span = min(span, self.maturity_ms)
        return self.end_ms - round(span)


# --------------------------------------------------------------------------- sessions


@dataclass(frozen=True)
class Step:
    """One step of a scripted session: ``tokens`` repeated ``lo..hi`` times.

    With ``p`` the repeat count is ``lo + Binomial(hi - lo, p)`` (an optional step taken with
    probability ``p``); without it, uniform on ``lo..hi``.
    """

    tokens: tuple[str, ...]
    lo: int = 1
    hi: int = 1
    p: float | None = None


@dataclass(frozen=True)
class Sessions:
    """Padded token ids, one row per transaction, left-aligned, ``PAD`` after ``lengths``."""

    tokens: np.ndarray
    lengths: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """Which positions of ``tokens`` hold real events (the rest are padding)."""
        return np.arange(self.tokens.shape[1])[None, :] < self.lengths[:, None]

    def take(self, rows: np.ndarray) -> Sessions:
        """The sessions of ``rows``, in that order."""
        return Sessions(self.tokens[rows], self.lengths[rows])


def concat_sessions(*parts: Sessions) -> Sessions:
    """Row-wise concatenation of ragged sessions (``a`` then ``b`` for each transaction)."""
    out = parts[0]
    for b in parts[1:]:
        n = len(out.lengths)
        tokens = np.full((n, out.tokens.shape[1] + b.tokens.shape[1]), PAD, dtype=np.int16)
        tokens[:, : out.tokens.shape[1]] = np.where(out.mask, out.tokens, PAD)
        rows, cols = np.nonzero(b.mask)
        tokens[rows, out.lengths[rows] + cols] = b.tokens[rows, cols]
        out = Sessions(tokens, out.lengths + b.lengths)
    return out


def script_sessions(
    rng: np.random.Generator, n: int, steps: Sequence[Step], vocab: Mapping[str, int]
) -> Sessions:
    """Sessions following a script with optional and repeated steps."""
    parts = []
    for step in steps:
        ids = np.array([vocab[t] for t in step.tokens], dtype=np.int16)
        if step.p is None:
            reps = rng.integers(step.lo, step.hi + 1, size=n)
        else:
            reps = step.lo + rng.binomial(step.hi - step.lo, step.p, size=n)
        tokens = np.tile(ids, (n, step.hi))
        parts.append(Sessions(tokens, (reps * len(ids)).astype(np.int64)))
    return concat_sessions(*parts)


def markov_sessions(
    rng: np.random.Generator,
    archetype: np.ndarray,
    lengths: np.ndarray,
    start: np.ndarray,
    transition: np.ndarray,
) -> Sessions:
    """Random walks of the given lengths, each on its archetype's Markov chain.

    ``start`` is ``(n_archetypes, n_pages)``, ``transition`` ``(n_archetypes, n_pages, n_pages)``;
    rows need not be normalised.
    """
    n = len(lengths)
    width = int(lengths.max(initial=0))
    tokens = np.full((n, max(width, 1)), PAD, dtype=np.int16)
    if width == 0:
        return Sessions(tokens[:, :0], lengths.astype(np.int64))
    start_cdf = np.cumsum(start / start.sum(axis=1, keepdims=True), axis=1)
    trans_cdf = np.cumsum(transition / transition.sum(axis=2, keepdims=True), axis=2)
    state = _draw(rng, start_cdf[archetype])
    tokens[:, 0] = state
    for j in range(1, width):
        live = np.nonzero(lengths > j)[0]
        state = _draw(rng, trans_cdf[archetype[live], tokens[live, j - 1]])
        tokens[live, j] = state
    return Sessions(np.where(_mask(lengths, width), tokens, PAD).astype(np.int16), lengths)


def _draw(rng: np.random.Generator, cdf: np.ndarray) -> np.ndarray:
    u = rng.random(len(cdf)) * cdf[:, -1]
    return np.minimum((u[:, None] > cdf).sum(axis=1), cdf.shape[1] - 1)


def _mask(lengths: np.ndarray, width: int) -> np.ndarray:
    return np.arange(width)[None, :] < lengths[:, None]


@dataclass(frozen=True)
class Archetype:
    """A kind of normal visitor.

    How common, where they land, what they linger on, and how long they browse
    (``round(exp(N(mu, sd)))`` pages before checkout).
    """

    share: float
    entry: Mapping[str, float]
    likes: Mapping[str, float]
    log_length: tuple[float, float]


@dataclass(frozen=True)
class Site:
    """A website's normal traffic.

    Pages, typical flows between them, visitor archetypes and the checkout funnel every session ends
    with.

    ``pages`` maps a page to ``(popularity while browsing, typical seconds spent on it)``;
    popularity 0 keeps a page out of browsing (reached only through ``checkout``).
    ``flows`` are the likely next pages; a ``1 - flow_share`` remainder of each step is
    taste-weighted noise, so rare pages still occur anywhere.
    """

    pages: Mapping[str, tuple[float, float]]
    flows: Mapping[str, Mapping[str, float]]
    archetypes: Mapping[str, Archetype]
    checkout: tuple[Step, ...]
    flow_share: float = 0.7
    max_events: int = 60
    min_events: int = 3

    @cached_property
    def vocabulary(self) -> tuple[str, ...]:
        """The page names, in token-id order."""
        return tuple(self.pages)

    @cached_property
    def index(self) -> dict[str, int]:
        """Each page's token id, by name."""
        return {p: i for i, p in enumerate(self.pages)}

    @cached_property
    def page_seconds(self) -> np.ndarray:
        """Each page's typical reading time in seconds, in token-id order."""
        return np.array([s for _, s in self.pages.values()])

    def uniform_seconds(self, seconds: float) -> np.ndarray:
        """The same dwell for every page: scripts read nothing."""
        return np.full(len(self.pages), seconds)

    @cached_property
    def _chain(self) -> tuple[np.ndarray, np.ndarray]:
        popularity = np.array([p for p, _ in self.pages.values()])
        k, n_arch = len(self.pages), len(self.archetypes)
        start = np.zeros((n_arch, k))
        flows = np.zeros((k, k))
        for src, dst in self.flows.items():
            for page, w in dst.items():
                flows[self.index[src], self.index[page]] = w
        has_flow = flows.sum(axis=1, keepdims=True) > 0
        flows = np.divide(flows, flows.sum(axis=1, keepdims=True), where=has_flow, out=flows)
        transition = np.zeros((n_arch, k, k))
        for a, arch in enumerate(self.archetypes.values()):
            for page, w in arch.entry.items():
                start[a, self.index[page]] = w
            taste = popularity.copy()
            for page, w in arch.likes.items():
                taste[self.index[page]] *= w
            taste /= taste.sum()
            mixed = self.flow_share * flows + (1 - self.flow_share) * taste
            transition[a] = np.where(has_flow, mixed, taste)
        return start, transition

    def sessions(self, rng: np.random.Generator, n: int) -> Sessions:
        """Archetype-driven browsing (a Markov walk) then the checkout funnel."""
        arch = list(self.archetypes.values())
        shares = np.array([a.share for a in arch])
        archetype = rng.choice(len(arch), size=n, p=shares / shares.sum())
        checkout = script_sessions(rng, n, self.checkout, self.index)
        mu = np.array([a.log_length[0] for a in arch])[archetype]
        sd = np.array([a.log_length[1] for a in arch])[archetype]
        browse = np.round(np.exp(rng.normal(mu, sd))).astype(np.int64)
        lo = np.maximum(0, self.min_events - checkout.lengths)
        browse = np.clip(browse, lo, self.max_events - checkout.lengths)
        start, transition = self._chain
        walk = markov_sessions(rng, archetype, browse, start, transition)
        return concat_sessions(walk, checkout)


# --------------------------------------------------------------------------- dwell


def human_gaps(
    rng: np.random.Generator,
    sessions: Sessions,
    page_median_s: np.ndarray,
    sigma: float = 0.8,
    speed_sigma: float = 0.35,
    clip_s: tuple[float, float] = (0.4, 1_200.0),
) -> np.ndarray:
    """Milliseconds spent on each page before the next event.

    Log-normal around a page's typical reading time, scaled by a per-session reading speed (people
    differ).
    """
    speed = rng.lognormal(0.0, speed_sigma, size=(len(sessions.lengths), 1))
    median = page_median_s[np.maximum(sessions.tokens, 0)]
    gaps = median * speed * rng.lognormal(0.0, sigma, size=sessions.tokens.shape)
    return np.clip(gaps, *clip_s) * MS_PER_S


def regular_gaps(
    rng: np.random.Generator, sessions: Sessions, mean_ms: float, jitter_ms: float
) -> np.ndarray:
    """Machine cadence: a fixed delay with small Gaussian jitter, whatever the page."""
    gaps = rng.normal(mean_ms, jitter_ms, size=sessions.tokens.shape)
    return np.clip(gaps, mean_ms - 4 * jitter_ms, mean_ms + 4 * jitter_ms).clip(min=20.0)


def replayed_gaps(
    rng: np.random.Generator, sessions: Sessions, template_ms: np.ndarray, rel_jitter: float
) -> np.ndarray:
    """A recorded session replayed: the same per-step delays, each scaled by a little noise."""
    width = sessions.tokens.shape[1]
    template = np.resize(template_ms, width)[None, :]
    return template * (1.0 + rel_jitter * rng.standard_normal(sessions.tokens.shape)).clip(0.5)


def content_blind_gaps(
    rng: np.random.Generator, sessions: Sessions, gaps_ms: np.ndarray
) -> np.ndarray:
    """Human delays slept in random order: each session's observable gaps, permuted.

    What a bot does when it sleeps a human-like delay drawn from a recorded pool whatever
    the page: every session keeps exactly a human's set of delays (same median, spread,
    minimum, same pages and length), but 40 s may now be spent on ``add_to_cart`` and 3 s
    on the reviews. Only the gaps a click-stream can show (all but the last page's) move.
    """
    observable = np.arange(gaps_ms.shape[1])[None, :] < (sessions.lengths - 1)[:, None]
    keys = np.where(observable, rng.random(gaps_ms.shape), np.inf)
    return np.take_along_axis(gaps_ms, np.argsort(keys, axis=1, kind="stable"), axis=1)


# --------------------------------------------------------------------------- time


def diurnal_times(rng: np.random.Generator, n: int, window: Window) -> np.ndarray:
    """Human traffic: busier in the (UTC) evening, quiet at night, sampled per minute."""
    minutes = np.arange(window.start_ms, window.end_ms, 60_000, dtype=np.int64)
    hour = (minutes // MS_PER_HOUR) % 24
    weight = 1.0 + 0.8 * np.sin((hour - 14) / 24 * 2 * np.pi)
    cdf = np.cumsum(weight)
    idx = np.searchsorted(cdf, rng.random(n) * cdf[-1])
    return np.minimum(minutes[idx] + rng.integers(0, 60_000, size=n), window.end_ms - 1)


def burst_times(
    rng: np.random.Generator,
    n: int,
    lo_ms: int,
    hi_ms: int,
    n_bursts: int,
    spread_minutes: float,
) -> np.ndarray:
    """Rings work in waves.

    Burst centres, one per equal slice of ``[lo_ms, hi_ms)`` so an ongoing ring spans the window
    (and its mature part), transactions scattered around them.
    """
    slot = (hi_ms - lo_ms) / n_bursts
    centres = (lo_ms + slot * (np.arange(n_bursts) + rng.random(n_bursts))).astype(np.int64)
    t = centres[rng.integers(0, n_bursts, size=n)]
    t = t + np.abs(rng.normal(0, spread_minutes * 60_000, size=n)).astype(np.int64)
    return np.clip(t, lo_ms, hi_ms - 1)


# --------------------------------------------------------------------------- features


def choice(rng: np.random.Generator, options: Mapping[str, float], n: int) -> np.ndarray:
    """Categorical draws from ``{value: weight}``."""
    values = np.array(list(options), dtype=object)
    p = np.array(list(options.values()), dtype=float)
    return values[rng.choice(len(values), size=n, p=p / p.sum())]


def hex_ids(rng: np.random.Generator, prefix: str, n: int, digits: int = 12) -> np.ndarray:
    """Random opaque identifiers (devices, accounts) that reveal nothing about their origin."""
    raw = rng.integers(0, 16**digits, size=n, dtype=np.int64)
    return np.array([f"{prefix}{v:0{digits}x}" for v in raw.tolist()], dtype=object)


def trailing_count(keys: np.ndarray, ts_ms: np.ndarray, horizon_ms: int) -> np.ndarray:
    """Velocity: earlier transactions with the same key within ``horizon_ms`` before each one."""
    _, code = np.unique(keys, return_inverse=True)
    order = np.lexsort((ts_ms, code))
    span = int(ts_ms.max() - ts_ms.min()) + 2 * horizon_ms + 1
    packed = code[order].astype(np.int64) * span + (ts_ms[order] - ts_ms.min())
    lower = np.searchsorted(packed, packed - horizon_ms, side="left")
    out = np.empty(len(keys), dtype=np.int64)
    out[order] = np.arange(len(keys)) - lower
    return out


# --------------------------------------------------------------------------- assembly


@dataclass(frozen=True)
class Cohort:
    """Transactions of one behaviour pattern, ready to be merged into the window."""

    pattern: str
    is_fraud: np.ndarray
    ts_ms: np.ndarray
    sessions: Sessions
    gaps_ms: np.ndarray
    features: dict[str, np.ndarray]
    decline_p: np.ndarray

    def __post_init__(self) -> None:
        """Refuse per-transaction arrays of different lengths."""
        n = len(self.ts_ms)
        sizes = {len(self.is_fraud), len(self.sessions.lengths), len(self.decline_p)}
        sizes |= {len(v) for v in self.features.values()}
        if sizes != {n} or self.gaps_ms.shape != self.sessions.tokens.shape:
            raise ValueError(f"cohort {self.pattern!r} has inconsistent lengths")

    def subset(self, rows: np.ndarray, pattern: str) -> Cohort:
        """Some of these transactions, renamed (e.g. normal-looking ones a ring will own)."""
        return Cohort(
            pattern,
            self.is_fraud[rows],
            self.ts_ms[rows],
            self.sessions.take(rows),
            self.gaps_ms[rows],
            {k: v[rows] for k, v in self.features.items()},
            self.decline_p[rows],
        )

    def as_fraud(self, **changes: object) -> Cohort:
        """The same transactions marked fraudulent, with ``changes`` to any other field."""
        return replace(self, is_fraud=np.ones(len(self.ts_ms), bool), **changes)


def carve(rng: np.random.Generator, cohort: Cohort, sizes: Mapping[str, int]) -> list[Cohort]:
    """Split a cohort at random: ``sizes[p]`` rows become pattern ``p``, the rest keep theirs.

    Look-alike fraud (lone fraudsters, timing-only bots) is carved out of the normal sampler's
    output, so that everything not deliberately changed afterwards is normal by construction.
    """
    rows = rng.permutation(len(cohort.ts_ms))
    bounds = np.cumsum(list(sizes.values()))
    *parts, rest = np.split(rows, bounds)
    return [cohort.subset(rest, cohort.pattern)] + [
        cohort.subset(part, name) for name, part in zip(sizes, parts, strict=True)
    ]


@dataclass(frozen=True)
class Ring:
    """A fraud ring's size and the share of it the real-time engine declines.

    The size is a share of all transactions. Most ring fraud gets through the existing
    engine, which is the point.
    """

    share: float
    catch_rate: float

    def cohort(
        self,
        pattern: str,
        ts_ms: np.ndarray,
        sessions: Sessions,
        gaps_ms: np.ndarray,
        features: dict[str, np.ndarray],
    ) -> Cohort:
        """The ring's transactions as a fraud cohort, each declined at the ring's ``catch_rate``."""
        n = len(ts_ms)
        decline_p = np.full(n, self.catch_rate)
        return Cohort(pattern, np.ones(n, bool), ts_ms, sessions, gaps_ms, features, decline_p)


def ring_sizes(rings: Mapping[str, Ring], n_transactions: int) -> dict[str, int]:
    """Transactions of each ring in a window of ``n_transactions``.

    Raises
    ------
    ValueError
        Under 200 transactions, where a ring of a share of 1% may have none.
    """
    if n_transactions < 200:
        raise ValueError("n_transactions must be at least 200 so that every ring exists")
    return {name: round(ring.share * n_transactions) for name, ring in rings.items()}


@dataclass(frozen=True)
class Velocity:
    """A trailing-count feature computed from the merged window (``column`` by ``key``)."""

    column: str
    key: str
    hours: float


def assemble(
    rng: np.random.Generator,
    cohorts: Sequence[Cohort],
    vocabulary: Sequence[str],
    window: Window,
    velocity: Velocity | None = None,
) -> SyntheticTables:
    """Merge cohorts into time-ordered events, transactions and truth tables.

    Transaction ids are assigned in time order after merging so they carry no trace of the
    pattern; a transaction's ``ts`` is its last event's ``ts``; labels are withheld for
    transactions younger than the maturity horizon, as chargebacks take time to arrive.
    """
    ts = np.concatenate([c.ts_ms for c in cohorts]).astype(np.int64)
    order = np.argsort(ts, kind="stable")
    ts = ts[order]
    n = len(ts)
    txn_ids = np.array([f"T{i:08d}" for i in range(1, n + 1)], dtype=object)
    pattern = np.concatenate([np.full(len(c.ts_ms), c.pattern, dtype=object) for c in cohorts])
    is_fraud = np.concatenate([c.is_fraud for c in cohorts]).astype(bool)[order]
    decline_p = np.concatenate([c.decline_p for c in cohorts])[order]
    features = {
        name: np.concatenate([c.features[name] for c in cohorts])[order]
        for name in cohorts[0].features
    }
    width = max(c.sessions.tokens.shape[1] for c in cohorts)
    tokens = np.concatenate([_pad(c.sessions.tokens, width, PAD) for c in cohorts])[order]
    gaps = np.concatenate([_pad(c.gaps_ms, width, 0.0) for c in cohorts])[order]
    lengths = np.concatenate([c.sessions.lengths for c in cohorts])[order]

    events = _events(tokens, gaps, lengths, ts, txn_ids, features["user_id"], vocabulary)

    columns: dict[str, pa.Array] = {
        "txn_id": pa.array(txn_ids, pa.string()),
        "ts": pa.array(ts, pa.timestamp("ms", tz="UTC")),
    }
    for name, values in features.items():
        columns[name] = _arrow(values)
    if velocity is not None:
        counts = trailing_count(features[velocity.key], ts, round(velocity.hours * MS_PER_HOUR))
        columns[velocity.column] = pa.array(counts, pa.int64())
    mature = ts < window.end_ms - window.maturity_ms
    columns["label"] = pa.array(is_fraud.astype(np.int8), pa.int8(), mask=~mature)
    declined = rng.random(n) < decline_p
    columns["decision"] = pa.array(np.where(declined, "declined", "approved"), pa.string())
    truth = pa.table(
        {
            "txn_id": columns["txn_id"],
            "pattern": pa.array(pattern[order], pa.string()),
            "is_fraud": pa.array(is_fraud, pa.bool_()),
        }
    )
    return SyntheticTables(events, pa.table(columns), truth)


def _pad(a: np.ndarray, width: int, fill: float) -> np.ndarray:
    return np.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=fill)


def _arrow(values: np.ndarray) -> pa.Array:
    if values.dtype == object:
        return pa.array(values, pa.string())
    return pa.array(values)


def _events(
    tokens: np.ndarray,
    gaps: np.ndarray,
    lengths: np.ndarray,
    txn_ts: np.ndarray,
    txn_ids: np.ndarray,
    user_ids: np.ndarray,
    vocabulary: Sequence[str],
) -> pa.Table:
    """Flatten padded sessions into events that end exactly at their transaction's ``ts``."""
    mask = _mask(lengths, tokens.shape[1])
    rows = np.nonzero(mask)[0]
    tok = tokens[mask].astype(np.int32)
    gap = np.round(gaps[mask]).astype(np.int64).clip(min=1)
    # The gap after a session's last page is the checkout itself: it does not exist.
    last = np.cumsum(lengths) - 1
    gap[last] = 0
    csum = np.cumsum(gap)
    # ts_j = txn_ts - (sum of gaps from j to the session's end)
    ts = txn_ts[rows] - (csum[last][rows] - csum + gap)
    order = np.argsort(ts, kind="stable")
    rows, tok, ts = rows[order], tok[order], ts[order]
    return pa.table(
        {
            "txn_id": pa.array(txn_ids, pa.string()).take(pa.array(rows)),
            "ts": pa.array(ts, pa.timestamp("ms", tz="UTC")),
            "event": pa.DictionaryArray.from_arrays(
                pa.array(tok, pa.int32()), pa.array(list(vocabulary), pa.string())
            ).cast(pa.string()),
            "user_id": pa.array(user_ids, pa.string()).take(pa.array(rows)),
        }
    )
