"""Events at lake scale: checked and sessionized piece by piece on Dask, never held whole.

Two passes over the events. The first only counts, piece by piece, and adds the counts up in a
tree (a Dask bag's fold): events per transaction, since a session's length is global; accepted
events per transaction and per event name; rows outside the window. A fatal defect surfaces
there, before anything is written. The second checks rows again, session length included,
tokenizes accepted events, range-partitions them by transaction (Dask's disk-backed shuffle:
partd under threads, p2p on a cluster), sessionizes each partition and writes it; only the
quarantine, and counts, come back to the client.

The pieces' functions live in ``ops`` and ``catalog``: a worker imports those, not Prefect.
Each piece's task also reports the rows it read, for the stage's progress
(``tasks.ingest_progress``).
"""

from __future__ import annotations

import functools
import operator
import posixpath
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace

import dask
import dask.bag as db
import dask.dataframe as dd
import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from dask.delayed import Delayed

from catalog.datasets import DATASETS, Catalog
from catalog.readers import ROW_COLUMN, SOURCE_COLUMN, source_digest
from catalog.schemas import EVENTS, InputError
from catalog.source_pieces import Piece, plan_pieces, read_piece
from ops.ingest import (
    QUARANTINE_COLUMNS,
    SEQUENCE_SCHEMA,
    TOKEN_DTYPES,
    CheckedEvents,
    EventsProfile,
    check_event_piece,
    sessionize_partition,
)
from tasks.ingest_progress import report_rows, rows_progress

JOINED_ROW_GROUP = 65_536  # sequences per row group of the joined file (~20 MB in memory)
QUARANTINE_DTYPES = {c: "int64" if c == "row" else "object" for c in QUARANTINE_COLUMNS}
# The first pass's tree: each of PROFILE_TASKS tasks counts its pieces into one running total
# (two counts per transaction), and totals are added PROFILE_FAN_IN at a time.
PROFILE_TASKS, PROFILE_FAN_IN = 16, 4


@dataclass(frozen=True)
class EventsPlan:
    """The events' pieces and the transactions they are judged against."""

    uri: str
    pieces: list[Piece]
    known_txns: pa.Array  # accepted transaction ids, sorted: an event's code indexes this
    outside_txns: pa.Array  # ids of transactions outside the window, sorted
    max_session_events: int

    @classmethod
    def create(
        cls,
        uri: str,
        known_txns: pd.Series,
        outside_txns: pd.Index,
        max_session_events: int,
        piece_rows: int,
    ) -> EventsPlan:
        """Plan the pieces of the events at ``uri``; pack the ids they are checked against."""
        known = _sorted_ids(known_txns.astype(str).to_numpy(dtype=object))
        outside = _sorted_ids(outside_txns.astype(str).to_numpy(dtype=object))
        pieces = plan_pieces(uri, piece_rows)
        return cls(uri, pieces, known, outside, max_session_events)

    @property
    def paths(self) -> list[str]:
        """The file of each piece, in the pieces' order."""
        return [piece.path for piece in self.pieces]

    def shared(self, session_sizes: np.ndarray | None) -> tuple[object, ...]:
        """What every piece's check needs, one graph key each rather than a copy per task."""
        sizes = None if session_sizes is None else dask.delayed(session_sizes, pure=True)
        known = dask.delayed(self.known_txns, pure=True)
        outside = dask.delayed(self.outside_txns, pure=True)
        return known, outside, sizes, self.max_session_events


def _sorted_ids(ids: np.ndarray) -> pa.Array:
    """Distinct ids in the byte order events' ids are searched in (code points, for UTF-8).

    Large offsets, the form the search reads (``ops.ingest._sorted_ids``): as ``string`` they
    were converted again for every piece searched, 29 ms a piece at 3M ids.
    """
    return pa.array(np.sort(ids), pa.large_string())


def _check(
    piece: Piece,
    known: pa.Array,
    outside: pa.Array,
    session_sizes: np.ndarray | None,
    max_session_events: int,
) -> CheckedEvents:
    table = read_piece(piece, EVENTS, dictionary=("event",))
    report_rows(piece.path, table.num_rows)
    return check_event_piece(
        table,
        known,
        outside,
        session_sizes,
        max_session_events,
        SOURCE_COLUMN,
        ROW_COLUMN,
    )


def _tokens_and_quarantine(
    checked: CheckedEvents, vocabulary: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A checked piece's accepted events as integers, and its rejected rows."""
    return checked.tokens(vocabulary), checked.quarantine


def _profile(plan: EventsPlan, session_sizes: np.ndarray | None, stage: str) -> EventsProfile:
    pieces = db.from_sequence(plan.pieces, npartitions=min(len(plan.pieces), PROFILE_TASKS))
    checked = pieces.map(_check, *plan.shared(session_sizes))
    count = functools.partial(EventsProfile.of_pieces, n_known=len(plan.known_txns))
    totals = checked.reduction(count, _added, split_every=PROFILE_FAN_IN)
    with rows_progress(stage, plan.paths):
        return totals.compute()


def _added(profiles: Iterable[EventsProfile]) -> EventsProfile:
    return functools.reduce(operator.add, profiles)


def profile_events(plan: EventsPlan) -> EventsProfile:
    """First pass: counts only, nothing written; a fatal defect in any piece is raised here."""
    profile = _profile(plan, None, "ingest: checking events") if plan.pieces else None
    if profile is None or profile.rows_in == 0:
        raise InputError(f"{plan.uri}: input is empty (no rows)")
    too_long = profile.session_sizes > plan.max_session_events
    if not too_long.any():
        return profile
    # Rare: the events of quarantined sessions must not shape the vocabulary.
    return replace(
        profile,
        accepted_per_txn=np.where(too_long, 0, profile.accepted_per_txn),
        event_counts=_profile(
            plan, profile.session_sizes, "ingest: recounting events"
        ).event_counts,
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
    shared = plan.shared(profile.session_sizes)
    vocab = dask.delayed(vocabulary, pure=True)
    split = dask.delayed(_tokens_and_quarantine, nout=2)
    checked = [split(dask.delayed(_check)(piece, *shared), vocab) for piece in plan.pieces]
    quarantine = _frames([q for _, q in checked], QUARANTINE_DTYPES)
    with_events = np.flatnonzero(profile.accepted_per_txn)
    if len(with_events) == 0:
        empty = SEQUENCE_SCHEMA.empty_table()
        with rows_progress("ingest: writing sessions", plan.paths):
            rejected = quarantine.compute()
        return catalog.save_table("sequences", empty), rejected.reset_index(drop=True)

    tokens = _frames([t for t, _ in checked], TOKEN_DTYPES)
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
    with rows_progress("ingest: writing sessions", plan.paths):
        _, rejected = dask.compute(write, quarantine)
    # Pieces in file order, rows in order within each: the quarantine in file and row order.
    return _join_parts(catalog, "sequences", staging), rejected.reset_index(drop=True)


def _frames(parts: list[Delayed], dtypes: dict[str, str]) -> dd.DataFrame:
    meta = pd.DataFrame({c: pd.Series(dtype=t) for c, t in dtypes.items()})
    return dd.from_delayed(parts, meta=meta, verify_meta=False)


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
