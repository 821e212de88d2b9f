"""Ingest: read both sources, enforce the contract, quarantine bad rows, sessionize on Dask.

Transactions are checked in memory (they are ~100x fewer than events); events are checked and
sessionized piece by piece on Dask (``tasks.ingest_events``), so they never need to fit in
memory, and the benchmark (``benchmarks/bench_ingest.py``) measures this very path.

Per source, ``rows_in = accepted + quarantined + outside_window``: a row is never dropped
without being counted. Rows outside the ``start``/``end`` window are counted, not quarantined,
because a window over a lake routinely excludes most of it and the quarantine is for defects.

A second ingest of unchanged inputs with unchanged parameters and code into the same output
location reuses the outputs through Prefect's cache (results persisted under ``SHOAL_HOME``);
``lineage.json`` beside the outputs says which inputs and code produced them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from prefect import get_run_logger, task
from prefect.context import TaskRunContext
from pydantic import BaseModel, Field, model_validator

from catalog.datasets import Catalog
from catalog.readers import ROW_COLUMN, SOURCE_COLUMN, read_source
from catalog.schemas import TRANSACTIONS
from infra.dask import dask_scheduler
from infra.durable import result_storage
from infra.memory import STAGE_HOOKS
from infra.progress import stage_logger
from infra.tracking import RunLogger
from ops.ingest import (
    NO_EVENTS,
    build_vocabulary,
    first_failure,
    quarantine_rows,
    to_epoch_ms,
    transaction_checks,
)
from tasks.ingest_events import EventsPlan, profile_events, write_events
from tasks.ingest_provenance import (
    cached_source_digest,
    code_version,
    ingest_cache_key,
    read_provenance,
    write_provenance,
)
from tasks.io import log_dataset


class IngestParams(BaseModel):
    """How both sources are read, checked, windowed and sessionized."""

    vocabulary_size: int = Field(64, ge=2, description="most frequent events kept as tokens")
    max_sequence_length: int = Field(32, ge=2, description="last events kept per session")
    max_session_events: int = Field(
        5000, ge=2, description="longer sessions are quarantined as absurd"
    )
    partitions: int | None = Field(
        None,
        ge=1,
        description="Dask partitions for sessionization; by default as many as hold about "
        "piece_rows accepted events each",
    )
    piece_rows: int = Field(
        1_000_000,
        ge=1,
        description="events read per Dask task (whole Parquet row groups, at least one); "
        "smaller under a tight worker memory limit",
    )
    start: datetime | None = Field(
        None, description="keep transactions at or after this time (naive = UTC)"
    )
    end: datetime | None = Field(
        None, description="keep transactions before this time (naive = UTC)"
    )

    @model_validator(mode="after")
    def _window_is_ordered(self) -> IngestParams:
        if self.start and self.end and _ms(self.start) >= _ms(self.end):
            raise ValueError(f"start {self.start} must be before end {self.end}")
        return self


class IngestResult(BaseModel):
    """What ingest hands the next stages: digests, row counts and the vocabulary's size."""

    input_digests: dict[str, str]
    digests: dict[str, str]
    counts: dict[str, dict[str, int]]
    vocabulary_size: int
    cache_key: str = ""
    code_version: dict[str, str | None] = Field(default_factory=dict)
    reused: bool = False


def _ms(when: datetime) -> int:
    stamp = pd.Timestamp(when)
    return int((stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).value // 1_000_000)


def _frame(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas(types_mapper={pa.string(): pd.StringDtype()}.get)


def _outside(ts_ms: np.ndarray, ts_bad: np.ndarray, params: IngestParams) -> np.ndarray:
    """Rows with a readable time outside ``[start, end)``; unreadable times are defects instead."""
    out = np.zeros(len(ts_ms), dtype=bool)
    if params.start is not None:
        out |= ts_ms < _ms(params.start)
    if params.end is not None:
        out |= ts_ms >= _ms(params.end)
    return out & ~ts_bad


def _validate_transactions(
    table: pa.Table, params: IngestParams
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Index, int]:
    """Accepted rows, quarantine, ids of transactions outside the window and their count."""
    frame = _frame(table)
    ts_ms, ts_bad = to_epoch_ms(table.column("ts"))
    outside = _outside(ts_ms, ts_bad, params)
    outside_ids = pd.Index(frame.loc[outside, "txn_id"].dropna().astype(str).unique())
    frame, ts_ms, ts_bad = frame.loc[~outside], ts_ms[~outside], ts_bad[~outside]
    amount = pd.to_numeric(frame["amount"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    reasons = first_failure(len(frame), transaction_checks(frame, ts_bad, amount))
    quarantine = quarantine_rows(frame, reasons, SOURCE_COLUMN, ROW_COLUMN)
    ok = pd.isna(reasons)
    accepted = frame.loc[ok].copy()
    accepted["txn_id"] = accepted["txn_id"].astype(str)
    accepted["ts"] = pd.to_datetime(ts_ms[ok], unit="ms", utc=True)
    accepted["amount"] = amount[ok]
    if "label" in accepted:
        accepted["label"] = pd.to_numeric(accepted["label"], errors="coerce").astype("Float64")
    return accepted.reset_index(drop=True), quarantine, outside_ids, int(outside.sum())


def run_ingest(
    events_uri: str, transactions_uri: str, output_root: str, params: IngestParams
) -> IngestResult:
    """Everything but orchestration and tracking, so tests can drive it without engines.

    Every fatal check happens before the first write (the events' first pass only counts): a
    fatal defect leaves the output location untouched.
    """
    raw_txns, txns_digest = read_source(transactions_uri, TRANSACTIONS)
    stage_logger("shoal.ingest").info("ingest: %s transaction rows read", f"{raw_txns.num_rows:,}")
    txns, txn_quarantine, outside_txns, txns_outside = _validate_transactions(raw_txns, params)
    plan = EventsPlan.create(
        events_uri,
        txns["txn_id"],
        outside_txns,
        params.max_session_events,
        params.piece_rows,
    )
    with dask_scheduler():
        profile = profile_events(plan)
        events_digest = cached_source_digest(events_uri)
        code = pc.index_in(pa.array(txns["txn_id"].to_numpy(dtype=object)), plan.known_txns)
        has_events = profile.accepted_per_txn[code.to_numpy(zero_copy_only=False)] > 0
        orphan_q = quarantine_rows(
            txns,
            first_failure(len(txns), [(~has_events, NO_EVENTS)]),
            SOURCE_COLUMN,
            ROW_COLUMN,
        )
        txns = txns.loc[has_events].drop(columns=[SOURCE_COLUMN, ROW_COLUMN])
        vocabulary = build_vocabulary(profile.event_counts, params.vocabulary_size)
        catalog = Catalog(output_root)
        # Partitions sized like pieces, not a fixed count: a fixed count made the shuffle
        # concatenate more pieces into each of its tasks as the data grew.
        partitions = params.partitions or max(1, -(-profile.accepted // params.piece_rows))
        sequences_digest, event_quarantine = write_events(
            plan, profile, vocabulary, catalog, params.max_sequence_length, partitions
        )

    quarantine = pd.concat([txn_quarantine, orphan_q, event_quarantine], ignore_index=True)
    counts = {
        "transactions": {
            "rows_in": raw_txns.num_rows,
            "accepted": len(txns),
            "quarantined": len(txn_quarantine) + len(orphan_q),
            "outside_window": txns_outside,
        },
        "events": {
            "rows_in": profile.rows_in,
            "accepted": profile.accepted,
            "quarantined": len(event_quarantine),
            "outside_window": profile.outside_window,
        },
    }
    digests = {
        "transactions": catalog.save_table("transactions", txns.reset_index(drop=True)),
        "sequences": sequences_digest,
        "vocabulary": catalog.save_json("vocabulary", vocabulary),
        "quarantine": catalog.save_table("quarantine", quarantine),
    }
    catalog.save_json("ingest_counts", counts)
    inputs = {"transactions": txns_digest, "events": events_digest}
    key = ingest_cache_key(
        events_uri, transactions_uri, output_root, params.model_dump(mode="json")
    )
    result = IngestResult(
        input_digests=inputs,
        digests=digests,
        counts=counts,
        vocabulary_size=len(vocabulary),
        cache_key=key,
        code_version=code_version(),
    )
    lineage_digest = write_provenance(
        output_root,
        {
            "stage": "ingest",
            "cache_key": result.cache_key,
            "inputs": {
                "events": {"uri": events_uri, "digest": inputs["events"]},
                "transactions": {"uri": transactions_uri, "digest": inputs["transactions"]},
            },
            "params": params.model_dump(mode="json"),
            "code_version": result.code_version,
            "outputs": result.digests,
            "counts": result.counts,
            "written_at": datetime.now(UTC).isoformat(),
        },
    )
    return result.model_copy(update={"digests": {**digests, "lineage": lineage_digest}})


def _key_from_parameters(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    return str(parameters["key"])


@task(name="ingest-outputs", cache_key_fn=_key_from_parameters, persist_result=True)
def _ingest_outputs(
    events_uri: str, transactions_uri: str, output_root: str, params: IngestParams, key: str
) -> IngestResult:
    return run_ingest(events_uri, transactions_uri, output_root, params)


@task(name="ingest", retries=0, **STAGE_HOOKS)
def ingest(
    events_uri: str, transactions_uri: str, output_root: str, params: IngestParams, run_id: str
) -> IngestResult:
    """Fatal defects stop here, before anything is written; row defects go to quarantine.

    The cached inner task is refreshed, not read, whenever ``lineage.json`` at the output
    location does not name this key (outputs deleted, or overwritten by another input), so a
    cache hit always points at files that are really there.
    """
    logger = get_run_logger()
    key = ingest_cache_key(
        events_uri, transactions_uri, output_root, params.model_dump(mode="json")
    )
    lineage = read_provenance(output_root)
    current = lineage is not None and lineage.get("cache_key") == key
    # Results persist where ``infra.storage.result_storage`` says: shared storage in cluster
    # mode, else Prefect's local storage under ``SHOAL_HOME``.
    inner = _ingest_outputs.with_options(refresh_cache=not current, result_storage=result_storage())
    state = inner(events_uri, transactions_uri, output_root, params, key, return_state=True)
    result: IngestResult = state.result()
    if state.is_completed() and state.name == "Cached":
        result = result.model_copy(update={"reused": True})
        logger.info(
            "ingest: inputs, parameters and code unchanged (%s); reused outputs in %s",
            key,
            output_root,
        )

    tracker = RunLogger(run_id)
    tracker.params(params.model_dump(mode="json"), prefix="ingest.")
    tracker.tags({"shoal.ingest.cache_key": key, "shoal.ingest.reused": str(result.reused)})
    for source, c in result.counts.items():
        tracker.metrics({f"ingest.{source}.{k}": v for k, v in c.items()})
        logger.info(
            "%s: %d rows in = %d accepted + %d quarantined + %d outside the window",
            source,
            c["rows_in"],
            c["accepted"],
            c["quarantined"],
            c["outside_window"],
        )
    for source, uri in (("transactions", transactions_uri), ("events", events_uri)):
        rows = result.counts[source]["rows_in"]
        tracker.dataset(uri, source, result.input_digests[source], "input", rows)
    catalog = Catalog(output_root)
    log_dataset(tracker, catalog, "quarantine", "ingest")
    log_dataset(tracker, catalog, "vocabulary", "ingest")
    log_dataset(tracker, catalog, "lineage", "ingest")
    return result
