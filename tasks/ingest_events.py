"""Events at lake scale: checked and sessionized piece by piece on Dask, never held whole.

Two passes over the events. The first only counts (events per transaction, since a session's
length is global; accepted events per transaction and per event name; rows in and outside the
window) and is where a fatal defect surfaces, before anything is written. The second checks
rows again, session length included, tokenizes accepted events, range-partitions them by
transaction (Dask's disk-backed shuffle: partd under threads, p2p on a cluster), sessionizes
each partition and writes it; only the quarantine, and counts, come back to the client.

The pieces' functions live in ``ops`` and ``catalog``: a worker imports those, not Prefect.
"""

from __future__ import annotations

import posixpath
import uuid
from dataclasses import dataclass

import dask
import dask.dataframe as dd
import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from catalog.datasets import DATASETS, Catalog
from catalog.readers import ROW_COLUMN, SOURCE_COLUMN, source_digest
from catalog.schemas import EVENTS, InputError
from catalog.source_pieces import Piece, plan_pieces, read_piece
from ops.sessionize import (
    SEQUENCE_SCHEMA,
    sessionize_partition,
    tokenize_partition,
)
from ops.validation import EVENT_ROW_DTYPES, QUARANTINE_COLUMNS, check_event_rows

JOINED_ROW_GROUP = 65_536  # sequences per row group of the joined file (~20 MB in memory)


@dataclass(frozen=True)
class EventsProfile:
    """What the first pass learnt; enough to count, judge transactions and build the vocabulary."""

    rows_in: int
    outside_window: int
    session_sizes: np.ndarray  # events (any, in the window) per known transaction
    accepted_per_txn: np.ndarray  # accepted events per known transaction
    event_counts: pd.Series  # accepted events per event name

    @property
    def accepted(self) -> int:
        return int(self.accepted_per_txn.sum())


@dataclass(frozen=True)
class EventsPlan:
    """The events' pieces and the transactions they are judged against."""

    uri: str
    pieces: list[Piece]
    known_txns: pa.Array  # accepted transaction ids, sorted: an event's code indexes this
    outside_txns: pa.Array  # ids of transactions outside the window
    max_session_events: int

    @classmethod
    def create(
        cls, uri: str, known_txns: pd.Series, outside_txns: pd.Index, max_session_events: int
    ) -> EventsPlan:
        known = pa.array(np.sort(known_txns.astype(str).to_numpy(dtype=object)), pa.string())
        outside = pa.array(outside_txns.astype(str).to_numpy(dtype=object), pa.string())
        return cls(uri, plan_pieces(uri), known, outside, max_session_events)

    def rows(self, session_sizes: np.ndarray | None = None) -> dd.DataFrame:
        """Every event row, checked (session length too once ``session_sizes`` is known)."""
        # One graph key per array, shared by every piece, instead of a copy in each task.
        known = dask.delayed(self.known_txns, pure=True)
        outside = dask.delayed(self.outside_txns, pure=True)
        sizes = None if session_sizes is None else dask.delayed(session_sizes, pure=True)
        parts = [
            dask.delayed(_check_piece)(piece, known, outside, sizes, self.max_session_events)
            for piece in self.pieces
        ]
        return dd.from_delayed(parts, meta=_meta(EVENT_ROW_DTYPES), verify_meta=False)


def _check_piece(
    piece: Piece,
    known: pa.Array,
    outside: pa.Array,
    session_sizes: np.ndarray | None,
    max_session_events: int,
) -> pd.DataFrame:
    return check_event_rows(
        read_piece(piece, EVENTS),
        known,
        outside,
        session_sizes,
        max_session_events,
        SOURCE_COLUMN,
        ROW_COLUMN,
    )


def _meta(dtypes: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in dtypes.items()})


def _accepted(rows: dd.DataFrame) -> dd.DataFrame:
    return rows[(rows["code"] >= 0) & rows["reason"].isna()]


def _dense(counts: pd.Series, size: int) -> np.ndarray:
    out = np.zeros(size, dtype=np.int64)
    out[counts.index.to_numpy(dtype=np.int64)] = counts.to_numpy(dtype=np.int64)
    return out


def profile_events(plan: EventsPlan) -> EventsProfile:
    """First pass: counts only, nothing written; a fatal defect in any piece is raised here."""
    rows = plan.rows()
    accepted = _accepted(rows)
    # Tree reductions (split_out=1), not shuffles: each result has at most one row a transaction.
    rows_in, outside, sizes, per_txn, per_event = dask.compute(
        rows.shape[0],
        rows["outside"].sum(),
        rows.loc[rows["code"] >= 0, "code"].value_counts(split_out=1),
        accepted["code"].value_counts(split_out=1),
        accepted["event"].value_counts(split_out=1),
    )
    if rows_in == 0:
        raise InputError(f"{plan.uri}: input is empty (no rows)")
    n_known = len(plan.known_txns)
    session_sizes = _dense(sizes, n_known)
    too_long = session_sizes > plan.max_session_events
    if too_long.any():  # rare: the events of quarantined sessions must not shape the vocabulary
        rows = _accepted(plan.rows(session_sizes))
        per_event = rows["event"].value_counts(split_out=1).compute()
    return EventsProfile(
        rows_in=int(rows_in),
        outside_window=int(outside),
        session_sizes=session_sizes,
        accepted_per_txn=np.where(too_long, 0, _dense(per_txn, n_known)),
        event_counts=per_event,
    )


def write_events(
    plan: EventsPlan,
    profile: EventsProfile,
    vocabulary: list[str],
    catalog: Catalog,
    max_len: int,
    partitions: int,
) -> tuple[str, pd.DataFrame]:
    """Second pass: sequences written partition-wise, then joined into the catalog's dataset.

    Partitions are ranges of transactions in ``txn_id`` order, so the joined file is sorted by
    ``txn_id`` and its digest does not depend on the partitioning. Returns the sequences' digest
    and the events' quarantine (in file and row order).
    """
    rows = plan.rows(profile.session_sizes)
    quarantine = rows.loc[~rows["reason"].isna(), QUARANTINE_COLUMNS]
    with_events = np.flatnonzero(profile.accepted_per_txn)
    if len(with_events) == 0:
        return catalog.save_table("sequences", SEQUENCE_SCHEMA.empty_table()), quarantine.compute()

    token_meta = _meta({"code": "int64", "ts": "int64", "token": "int32"})
    tokens = _accepted(rows)[["code", "ts", "event"]].map_partitions(
        tokenize_partition, vocabulary, meta=token_meta
    )
    # Boundaries at quantiles of the transactions that have events: balanced partitions.
    cuts = np.linspace(0, len(with_events) - 1, min(partitions, len(with_events)) + 1)
    divisions = sorted(set(with_events[cuts.round().astype(int)].tolist()))
    if len(divisions) == 1:
        divisions = divisions * 2
    by_txn = tokens.set_index("code", divisions=divisions, drop=False)
    names = dask.delayed(plan.known_txns, pure=True)
    sequences = by_txn.map_partitions(
        sessionize_partition,
        names,
        max_len,
        meta=SEQUENCE_SCHEMA.empty_table().to_pandas(types_mapper=pd.ArrowDtype),
        align_dataframes=False,
    )
    staging = posixpath.join(catalog.root.rstrip("/"), f".sequences-{uuid.uuid4().hex}")
    write = sequences.to_parquet(staging, write_index=False, schema=SEQUENCE_SCHEMA, compute=False)
    _, events_quarantine = dask.compute(write, quarantine)
    return _join_parts(catalog, "sequences", staging), events_quarantine


def _join_parts(catalog: Catalog, name: str, staging: str) -> str:
    """One Parquet file from a folder of parts, a few parts in memory at a time.

    Row groups hold ``JOINED_ROW_GROUP`` rows whatever the parts' sizes, so the bytes (and the
    digest) do not depend on the partitioning. Atomic like the catalog's own writes (temporary
    name, then rename), and digested the way the catalog digests.
    """
    fs, folder = fsspec.core.url_to_fs(staging)
    parts = sorted(
        fs.glob(posixpath.join(folder, "*.parquet")),
        key=lambda p: int(posixpath.basename(p).split(".")[1]),
    )
    root = catalog.root.rstrip("/")
    tmp = posixpath.join(root, f".{DATASETS[name].filename}.{uuid.uuid4().hex}.tmp")
    tmp_path = fsspec.core.url_to_fs(tmp)[1]
    with (
        fs.open(tmp_path, "wb") as f,
        pq.ParquetWriter(f, SEQUENCE_SCHEMA, compression="zstd") as writer,
    ):
        pending = SEQUENCE_SCHEMA.empty_table()
        for part in parts:
            with fs.open(part, "rb") as p:
                pending = pa.concat_tables([pending, pq.read_table(p, schema=SEQUENCE_SCHEMA)])
            while pending.num_rows >= JOINED_ROW_GROUP:
                writer.write_table(pending.slice(0, JOINED_ROW_GROUP))
                pending = pending.slice(JOINED_ROW_GROUP)
        if pending.num_rows:
            writer.write_table(pending)
    digest = source_digest(tmp)
    fs.mv(tmp_path, fsspec.core.url_to_fs(catalog.uri(name))[1])
    fs.rm(folder, recursive=True)
    return digest
