from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ops.ingest import OOV, build_vocabulary, sessionize_events
from ops.ingest._sessionize import (
    INSERTION_SORTED,
    _order_sessions_by_time,
    encode_events,
    sessionize,
)


def test_orders_by_time_and_measures_dwell_between_events() -> None:
    table = sessionize(
        np.array(["b", "a", "a", "a", "b"]),
        np.array([5_000, 3_000, 1_000, 1_500, 4_000]),
        np.array([7, 3, 1, 2, 6], dtype=np.int32),
        max_len=10,
    ).to_pylist()
    a, b = sorted(table, key=lambda r: r["txn_id"])
    assert a["tokens"] == [1, 2, 3]
    assert a["dwell"] == pytest.approx([0.0, 0.5, 1.5])
    assert b["tokens"] == [6, 7] and b["dwell"] == pytest.approx([0.0, 1.0])
    assert (a["first_ts"], a["last_ts"], a["n_events"]) == (1_000, 3_000, 3)


def test_truncation_keeps_the_last_events_and_counts_what_was_cut() -> None:
    n = 7
    table = sessionize(
        np.array(["t"] * n), np.arange(n) * 1000, np.arange(2, 2 + n, dtype=np.int32), max_len=3
    ).to_pylist()[0]
    assert table["tokens"] == [6, 7, 8]
    assert table["dwell"] == pytest.approx([1.0, 1.0, 1.0]), "first kept gap is its true gap"
    assert (table["n_events"], table["n_truncated"]) == (7, 4)


def test_no_event_is_lost_across_many_sessions() -> None:
    rng = np.random.default_rng(0)
    txn = rng.integers(0, 500, 20_000).astype(str)
    table = sessionize(txn, rng.integers(0, 10**9, 20_000), np.full(20_000, 2, np.int32), 10_000)
    assert table.num_rows == len(np.unique(txn))
    assert sum(table.column("n_events").to_pylist()) == 20_000


@pytest.mark.parametrize("arrival", ["shuffled", "by_session", "by_session_and_time"])
def test_events_are_ordered_by_session_then_time_ties_kept_in_input_order(arrival: str) -> None:
    rng = np.random.default_rng(1)
    # sessions short and past the insertion sort's reach, times with many ties
    lengths = rng.choice([1, 3, INSERTION_SORTED, INSERTION_SORTED + 1, 300], 400)
    code = np.repeat(np.arange(len(lengths)), lengths)
    ts = rng.integers(0, 50, len(code))
    if arrival == "shuffled":
        shuffle = rng.permutation(len(code))
        code, ts = code[shuffle], ts[shuffle]
    elif arrival == "by_session_and_time":
        ts = np.concatenate([np.sort(t) for t in np.split(ts, np.cumsum(lengths)[:-1])])
    order = np.argsort(code, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(code[order]) != 0])
    _order_sessions_by_time(order, starts, ts)
    assert order.tolist() == np.lexsort((ts, code)).tolist()


def test_vocabulary_is_ordered_by_frequency_then_name_and_unknowns_map_to_oov() -> None:
    counts = pd.Series({"home": 5, "cart": 9, "item": 5, "rare": 1})
    vocabulary = build_vocabulary(counts, max_size=3)
    assert vocabulary == ["cart", "home", "item"]
    ids = encode_events(pd.Series(["home", "rare", "cart"]), vocabulary)
    assert ids.tolist() == [3, OOV, 2]


def test_empty_input_gives_an_empty_table() -> None:
    empty = sessionize(np.array([], str), np.array([], np.int64), np.array([], np.int32), 5)
    assert empty.num_rows == 0


def test_in_memory_sessionization_of_an_events_table() -> None:
    events = pa.table(
        {
            "txn_id": ["a", "a", "b"],
            "ts": pa.array([2_000, 1_000, 5_000], pa.timestamp("ms", "UTC")),
            "event": ["cart", "home", "home"],
        }
    )
    table, vocabulary = sessionize_events(events, max_len=8, vocabulary_size=5)
    assert vocabulary == ["home", "cart"]
    rows = {r["txn_id"]: r for r in table.to_pylist()}
    assert rows["a"]["tokens"] == [2, 3] and rows["a"]["dwell"] == pytest.approx([0.0, 1.0])
