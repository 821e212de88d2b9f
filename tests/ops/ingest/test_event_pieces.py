from __future__ import annotations

import numpy as np
import pyarrow as pa

from ops.ingest import CheckedEvents, EventsProfile, check_event_piece
from ops.ingest._event_pieces import COUNT, PieceIds, _count_into, _saturating_sum
from ops.ingest._validation import UNKNOWN_TXN, missing_arrow_text

KNOWN = pa.array(["a", "b", "c", "d", "e"])


def _piece(txn: list, event: pa.Array, first_row: int = 0) -> pa.Table:
    n = len(txn)
    return pa.table(
        {
            "txn_id": pa.array(txn, pa.string()),
            "ts": pa.array(np.arange(n) * 1000, pa.timestamp("ms", "UTC")),
            "event": event,
            "_source": pa.array(["f.parquet"] * n),
            "_row": pa.array(np.arange(n) + first_row),
        }
    )


def test_each_row_gets_its_transactions_position_null_ids_none() -> None:
    ids = PieceIds.of(pa.chunked_array([["e", "x", "a"], [None, "c", "e"]]))
    assert ids.positions_in(KNOWN).tolist() == [4, -1, 0, -1, 2, 4]
    assert ids.positions_in(pa.array([], pa.string())).tolist() == [-1] * 6


def test_ids_get_the_same_codes_however_the_piece_is_chunked() -> None:
    # a gzip JSON file is one piece read in many small chunks
    rng = np.random.default_rng(0)
    ids = rng.choice(["a", "b", "c", "d", "e", "x", "y"], 500).tolist()
    one = PieceIds.of(pa.chunked_array([ids])).positions_in(KNOWN)
    many = PieceIds.of(pa.chunked_array([ids[i : i + 7] for i in range(0, 500, 7)]))
    assert one.tolist() == many.positions_in(KNOWN).tolist()
    assert one.tolist() == [KNOWN.to_pylist().index(t) if t in "abcde" else -1 for t in ids]
    assert PieceIds.of(pa.chunked_array([], pa.string())).positions_in(KNOWN).tolist() == []


def test_dictionary_text_is_judged_like_plain_text() -> None:
    values = ["home", " ", None, "", "cart", "home"]
    plain = pa.array(values, pa.string())
    assert missing_arrow_text(plain.dictionary_encode()).tolist() == [
        False,
        True,
        True,
        True,
        False,
        False,
    ]
    assert (
        missing_arrow_text(plain).tolist() == missing_arrow_text(plain.dictionary_encode()).tolist()
    )


def test_a_piece_quarantines_its_defects_and_codes_the_rest() -> None:
    event = pa.chunked_array(
        [
            pa.array(["home", "cart"]).dictionary_encode(),
            pa.array([" ", "pay", "home"]).dictionary_encode(),  # a dictionary of its own
        ]
    )
    table = _piece(["b", "zz", "a", "a", "c"], event, first_row=10)
    checked = check_event_piece(
        table, KNOWN, pa.array([], pa.string()), None, 5000, "_source", "_row"
    )
    assert checked.code.tolist() == [1, -1, 0, 0, 2]
    assert checked.accepted.tolist() == [True, False, False, True, True]
    q = checked.quarantine
    assert q[["row", "reason"]].values.tolist() == [[11, UNKNOWN_TXN], [12, "event is missing"]]
    tokens = checked.tokens(["home", "pay"]).to_dict("list")
    assert tokens == {"code": [1, 0, 2], "ts": [0, 3000, 4000], "token": [2, 3, 2]}


def test_profiles_add_up_counts_by_transaction_and_by_name_across_pieces() -> None:
    def checked(txn: list, names: list) -> CheckedEvents:
        table = _piece(txn, pa.array(names).dictionary_encode())
        return check_event_piece(table, KNOWN, pa.array(["out"]), None, 5000, "_source", "_row")

    first = checked(["a", "a", "out"], ["home", "", "cart"])
    second = checked(["e", "a"], ["cart", "pay"])
    in_one_task = EventsProfile.of_pieces([first, second], len(KNOWN))
    in_two = EventsProfile.of_pieces([first], len(KNOWN)) + EventsProfile.of_pieces(
        [second], len(KNOWN)
    )
    for total in (in_one_task, in_two):
        assert (total.rows_in, total.outside_window, total.accepted) == (5, 1, 3)
        assert total.session_sizes.tolist() == [3, 0, 0, 0, 1], "a blank event still counts"
        assert total.accepted_per_txn.tolist() == [2, 0, 0, 0, 1]
        assert total.event_counts.sort_index().to_dict() == {"cart": 1, "home": 1, "pay": 1}
    nothing = EventsProfile.of_pieces([], len(KNOWN))
    assert (nothing.rows_in, nothing.accepted, len(nothing.event_counts)) == (0, 0, 0)


def test_counts_stick_at_their_largest_value_rather_than_wrap() -> None:
    top = np.iinfo(COUNT).max
    total = _saturating_sum(np.array([top - 1, 7], COUNT), np.array([5, 1], COUNT))
    assert total.tolist() == [top, 8]
    counted = np.array([top - 1, 7, 0], COUNT)
    _count_into(counted, np.array([0, 0, 1, 2]), np.array([True, True, True, False]))
    assert counted.tolist() == [top, 8, 0]
