"""Events to per-transaction sequences of tokens and dwell times, the encoder's input.

FinDeepBehaviorCluster feeds the page sequence and the dwell-time sequence of each session to the
network; eBay kept the ~40 most frequent pages. Everything here is vectorised over Arrow offsets,
so a partition of millions of events sessionizes without a Python loop per transaction.
"""

from __future__ import annotations

import numba
import numpy as np
import pandas as pd
import pyarrow as pa

from ops.constants import FIRST_TOKEN, OOV

SEQUENCE_SCHEMA = pa.schema(
    [
        ("txn_id", pa.string()),
        ("tokens", pa.list_(pa.int32())),
        ("dwell", pa.list_(pa.float32())),
        ("n_events", pa.int32()),
        ("n_truncated", pa.int32()),
        ("first_ts", pa.int64()),
        ("last_ts", pa.int64()),
    ]
)


def build_vocabulary(event_counts: pd.Series, max_size: int) -> list[str]:
    """Most frequent events first (ties by name, so the vocabulary is reproducible)."""
    counts = event_counts.groupby(level=0).sum()
    order = sorted(counts.items(), key=lambda kv: (-int(kv[1]), str(kv[0])))
    return [str(name) for name, _ in order[:max_size]]


def encode_events(events: pd.Series, vocabulary: list[str]) -> np.ndarray:
    """Token ids: 0 is padding, 1 out-of-vocabulary, then the vocabulary in order."""
    lookup = pd.Series(np.arange(FIRST_TOKEN, FIRST_TOKEN + len(vocabulary)), index=vocabulary)
    ids = events.map(lookup)
    return ids.fillna(OOV).to_numpy(dtype=np.int32)


def sessionize(
    txn_id: np.ndarray | pd.Series, ts_ms: np.ndarray, token: np.ndarray, max_len: int
) -> pa.Table:
    """Group events by transaction, order by time, keep the last ``max_len`` of each session.

    Dwell is the gap in seconds to the previous event of the same session (0 for the first),
    computed before truncation so the first kept event still carries its true gap. The number of
    events cut is recorded, not silently lost.
    """
    if len(txn_id) == 0:
        return SEQUENCE_SCHEMA.empty_table()
    # Sorting integer codes is several times faster than sorting the strings themselves;
    # ``sort=True`` keeps the codes in the strings' order, so sessions come out by txn_id.
    codes, names = pd.factorize(
        txn_id if isinstance(txn_id, pd.Series) else np.asarray(txn_id, dtype=object), sort=True
    )
    names = pa.array(np.asarray(names, dtype=object).astype(str), pa.string())
    return sessionize_coded(codes, names, ts_ms, token, max_len)


def sessionize_coded(
    code: np.ndarray, names: pa.Array, ts_ms: np.ndarray, token: np.ndarray, max_len: int
) -> pa.Table:
    """``sessionize`` for events whose transaction is given as its position in sorted ``names``.

    Ingest codes events this way before its shuffle: integers are cheaper to move and sort than
    strings, and sessions come out in ``txn_id`` order because ``names`` is sorted.
    """
    if len(code) == 0:
        return SEQUENCE_SCHEMA.empty_table()
    order = np.argsort(code, kind="stable")
    code_sorted = code[order]
    starts = np.flatnonzero(np.r_[True, code_sorted[1:] != code_sorted[:-1]])
    _order_sessions_by_time(order, starts, ts_ms)
    ts_sorted, tok_sorted = ts_ms[order], token[order]
    lengths = np.diff(np.r_[starts, len(code_sorted)])
    gaps = np.diff(ts_sorted, prepend=ts_sorted[0]).astype(np.float64) / 1000.0
    gaps[starts] = 0.0

    position_from_end = np.repeat(starts + lengths, lengths) - np.arange(len(code_sorted)) - 1
    keep = position_from_end < max_len
    kept = np.minimum(lengths, max_len)
    offsets = np.r_[0, np.cumsum(kept)].astype(np.int32)

    return pa.table(
        {
            "txn_id": names.take(pa.array(code_sorted[starts])).cast(pa.string()),
            "tokens": pa.ListArray.from_arrays(offsets, pa.array(tok_sorted[keep], pa.int32())),
            "dwell": pa.ListArray.from_arrays(offsets, pa.array(gaps[keep], pa.float32())),
            "n_events": pa.array(lengths, pa.int32()),
            "n_truncated": pa.array(lengths - kept, pa.int32()),
            "first_ts": pa.array(ts_sorted[starts], pa.int64()),
            "last_ts": pa.array(ts_sorted[starts + lengths - 1], pa.int64()),
        },
        schema=SEQUENCE_SCHEMA,
    )


# Sessions up to this long are put in time order by insertion, longer ones by merge sort.
INSERTION_SORTED = 32


@numba.njit(cache=True, nogil=True)
def _order_sessions_by_time(order: np.ndarray, starts: np.ndarray, ts_ms: np.ndarray) -> None:
    """Each session's slice of ``order`` stably sorted by time, in place.

    With ``order`` a stable sort by session, this equals ``np.lexsort((ts_ms, code))`` (equal
    times keep their input order). Ingest's partitions arrive sorted by session, which the
    stable sort finds in one pass, and events mostly in time order within one, so the cost
    grows with the events, not with events x log(events) as one sort over the partition does.
    """
    ends = np.append(starts[1:], len(order))
    for s in range(len(starts)):
        lo, hi = starts[s], ends[s]
        in_order = True
        for i in range(lo + 1, hi):
            if ts_ms[order[i]] < ts_ms[order[i - 1]]:
                in_order = False
                break
        if in_order:
            continue
        if hi - lo <= INSERTION_SORTED:
            for i in range(lo + 1, hi):
                row = order[i]
                j = i
                while j > lo and ts_ms[order[j - 1]] > ts_ms[row]:
                    order[j] = order[j - 1]
                    j -= 1
                order[j] = row
        else:
            session = order[lo:hi].copy()
            order[lo:hi] = session[np.argsort(ts_ms[session], kind="mergesort")]


def sessionize_partition(part: pd.DataFrame, names: pa.Array, max_len: int) -> pd.DataFrame:
    """One partition of coded events (``code``, ``ts``, ``token``), all of each session in it."""
    table = sessionize_coded(
        part["code"].to_numpy(dtype=np.int64),
        names,
        part["ts"].to_numpy(dtype=np.int64),
        part["token"].to_numpy(dtype=np.int32),
        max_len,
    )
    return table.to_pandas(types_mapper=pd.ArrowDtype)


def tokenize_partition(part: pd.DataFrame, vocabulary: list[str]) -> pd.DataFrame:
    """Event names to token ids, so the shuffle moves integers rather than text."""
    return pd.DataFrame(
        {
            "code": part["code"].to_numpy(dtype=np.int64),
            "ts": part["ts"].to_numpy(dtype=np.int64),
            "token": encode_events(part["event"], vocabulary),
        },
        index=part.index,
    )


def sessionize_events(
    events: pa.Table, max_len: int, vocabulary_size: int
) -> tuple[pa.Table, list[str]]:
    """In-memory sessionization of an events table that already meets the contract.

    For data that fits one process (tests, benchmarks, generator output); ingest's Dask path
    does the same per partition after validation (``sessionize_partition``).
    """
    frame = events.select(["txn_id", "event"]).to_pandas()
    ts_ms = events.column("ts").cast(pa.timestamp("ms", "UTC")).cast(pa.int64()).to_numpy()
    vocabulary = build_vocabulary(frame["event"].value_counts(), vocabulary_size)
    table = sessionize(
        frame["txn_id"].to_numpy(dtype=object).astype(str),
        ts_ms,
        encode_events(frame["event"], vocabulary),
        max_len,
    )
    return table, vocabulary
