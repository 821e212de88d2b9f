"""One piece of the events, checked and profiled on its own, for out-of-core ingest.

Ingest reads events piece by piece and never holds them whole, so each piece is judged alone:
its rows' defects, the accepted transaction each row belongs to, and the counts a first pass
adds up over all pieces (a session's length is global). Event names are few (dozens of pages
over millions of rows), so they are handled dictionary-encoded: checks, counts and tokens work
on the dictionary and one integer per row, never on a string per row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ops.ingest._sessionize import encode_events
from ops.ingest._sorted_ids import sorted_positions
from ops.ingest._timestamps import to_epoch_ms
from ops.ingest._validation import UNKNOWN_TXN, event_checks, first_failure, quarantine_rows

TOKEN_DTYPES = {"code": "int64", "ts": "int64", "token": "int32"}


def as_dictionary(values: pa.Array | pa.ChunkedArray) -> pa.DictionaryArray:
    """Text values as one dictionary array of strings (Parquet's own dictionary when read so)."""
    if isinstance(values, pa.ChunkedArray):
        if pa.types.is_dictionary(values.type):
            values = values.unify_dictionaries()
        values = values.combine_chunks()
    if not pa.types.is_dictionary(values.type):
        values = pc.dictionary_encode(pc.cast(values, pa.string()))
    if values.type.value_type != pa.string():
        values = values.cast(pa.dictionary(values.type.index_type, pa.string()))
    return values


@dataclass(frozen=True)
class PieceIds:
    """A piece's transaction ids, dictionary-encoded: each is matched once, not once a row."""

    distinct: pa.Array
    row_index: np.ndarray  # each row's position in ``distinct``; -1: a null id

    @classmethod
    def of(cls, txn: pa.Array | pa.ChunkedArray) -> PieceIds:
        if isinstance(txn, pa.ChunkedArray):
            # one array, then one dictionary: encoded chunk by chunk, every chunk carries the
            # whole dictionary and unifying them costs chunks x ids (a gzip JSON piece of 17M
            # events in ~2,000 chunks: minutes). Large offsets: a piece may exceed 2 GB of text.
            txn = txn.cast(pa.large_string())
            txn = txn.combine_chunks() if txn.num_chunks else pa.array([], pa.large_string())
        encoded = pc.dictionary_encode(txn)
        return cls(encoded.dictionary, encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False))

    def positions_in(self, sorted_ids: pa.Array) -> np.ndarray:
        """Each row's position in ``sorted_ids`` (see ``sorted_positions``); -1: absent."""
        of_distinct = np.append(sorted_positions(self.distinct, sorted_ids), -1)
        return of_distinct[self.row_index]


@dataclass(frozen=True)
class CheckedEvents:
    """A piece's rows judged: where each accepted one goes, and the rejected ones' records."""

    code: np.ndarray  # position of the row's transaction among the accepted ones; -1: none
    ts: np.ndarray  # epoch milliseconds
    event_index: np.ndarray  # position of the row's event in ``event_names`` (0 where null)
    event_names: pa.Array  # the piece's distinct event names
    accepted: np.ndarray
    outside: np.ndarray  # of a transaction outside the window: counted, not quarantined
    quarantine: pd.DataFrame  # rejected rows, in row order

    def tokens(self, vocabulary: list[str]) -> pd.DataFrame:
        """Accepted rows as integers (transaction code, time, token): what the shuffle moves."""
        token_of_name = encode_events(self.event_names.to_pandas(), vocabulary)
        keep = self.accepted
        return pd.DataFrame(
            {
                "code": self.code[keep],
                "ts": self.ts[keep],
                "token": token_of_name[self.event_index[keep]],
            }
        )


def check_event_piece(
    table: pa.Table,
    known_txns: pa.Array,
    outside_txns: pa.Array,
    session_sizes: np.ndarray | None,
    max_session_events: int,
    source_col: str,
    row_col: str,
) -> CheckedEvents:
    """Check one piece against the contract and the accepted transactions.

    ``known_txns`` (accepted) and ``outside_txns`` (outside the window) are distinct ids sorted
    in byte order; a row's code is its transaction's position in ``known_txns``.

    A session's length is global, so its check needs ``session_sizes`` (events per accepted
    transaction over every piece, from a first pass); without them it is skipped. Rows of a
    transaction outside the window get no reason: they are counted, not quarantined. Only
    rejected rows are ever turned into pandas objects.
    """
    n = table.num_rows
    ts_ms, ts_bad = to_epoch_ms(table.column("ts"))
    event = as_dictionary(table.column("event"))
    ids = PieceIds.of(pc.cast(table.column("txn_id"), pa.string()))
    code = ids.positions_in(known_txns)
    known = code >= 0
    outside = ~known & (ids.positions_in(outside_txns) >= 0)
    checked = table.set_column(table.schema.get_field_index("event"), "event", event)
    checks = [*event_checks(checked, ts_bad), (~known, UNKNOWN_TXN)]
    if session_sizes is not None and known.any():
        too_long = known & (session_sizes[np.where(known, code, 0)] > max_session_events)
        checks.append((too_long, f"session longer than {max_session_events} events"))
    reasons = first_failure(n, checks)
    reasons[outside] = None
    bad = ~pd.isna(reasons)
    rejected = table.filter(pa.array(bad)).to_pandas(
        types_mapper={pa.string(): pd.StringDtype()}.get
    )
    return CheckedEvents(
        code=code,
        ts=ts_ms,
        event_index=event.indices.fill_null(0).to_numpy(zero_copy_only=False),
        event_names=event.dictionary,
        accepted=known & ~bad,
        outside=outside,
        quarantine=quarantine_rows(rejected, reasons[bad], source_col, row_col),
    )


@dataclass(frozen=True)
class EventsProfile:
    """Counts over events, added up piece by piece.

    Enough to judge sessions and build the vocabulary before anything is written.
    """

    rows_in: int
    outside_window: int
    session_sizes: np.ndarray  # events (any, of an accepted transaction) per transaction
    accepted_per_txn: np.ndarray  # accepted events per accepted transaction
    event_counts: pd.Series  # accepted events per event name

    @classmethod
    def of_pieces(cls, pieces: Iterable[CheckedEvents], n_known: int) -> EventsProfile:
        """The counts over ``pieces``, each piece counted in O(its rows), not O(``n_known``).

        A profile per piece, added up, would write two counts for every known transaction
        once a piece: work of pieces x transactions over the whole pass.
        """
        session_sizes = np.zeros(n_known, dtype=COUNT)
        accepted_per_txn = np.zeros(n_known, dtype=COUNT)
        rows_in = outside_window = 0
        per_name = []
        for checked in pieces:
            rows_in += len(checked.code)
            outside_window += int(checked.outside.sum())
            _count_into(session_sizes, checked.code, checked.code >= 0)
            _count_into(accepted_per_txn, checked.code, checked.accepted)
            counts = np.bincount(
                checked.event_index[checked.accepted], minlength=len(checked.event_names)
            )
            per_name.append(pd.Series(counts, checked.event_names.to_pandas(), dtype=np.int64))
        return cls(
            rows_in=rows_in,
            outside_window=outside_window,
            session_sizes=session_sizes,
            accepted_per_txn=accepted_per_txn,
            event_counts=_add_by_name(per_name),
        )

    def __add__(self, other: EventsProfile) -> EventsProfile:
        return EventsProfile(
            rows_in=self.rows_in + other.rows_in,
            outside_window=self.outside_window + other.outside_window,
            session_sizes=_saturating_sum(self.session_sizes, other.session_sizes),
            accepted_per_txn=_saturating_sum(self.accepted_per_txn, other.accepted_per_txn),
            event_counts=_add_by_name([self.event_counts, other.event_counts]),
        )

    @property
    def accepted(self) -> int:
        return int(self.accepted_per_txn.sum())


# Counts per transaction in 32 bits: a profile holds two per transaction and a first pass adds
# a few at once, which must fit a small worker beside the piece it reads.
COUNT = np.uint32


def _add_by_name(counts: list[pd.Series]) -> pd.Series:
    """Counts per event name added up, names never counted left out.

    Pieces have dictionaries of their own: names are matched, not positions.
    """
    total = pd.concat(counts).groupby(level=0).sum() if counts else pd.Series(dtype=np.int64)
    return total[total > 0]


@numba.njit(cache=True, nogil=True)
def _count_into(total: np.ndarray, code: np.ndarray, counted: np.ndarray) -> None:
    """One more in ``total[code[i]]`` for each counted row, stuck at the largest count."""
    top = total.dtype.type(-1)  # all bits set: the largest unsigned count
    for i in range(len(code)):
        if counted[i] and total[code[i]] != top:
            total[code[i]] += 1


def _saturating_sum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a + b``, stuck at the largest count instead of wrapping: an absurd session stays so."""
    total = a + b
    total[total < a] = np.iinfo(COUNT).max
    return total
