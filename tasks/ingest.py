"""Ingest: read both sources, enforce the contract, quarantine bad rows, sessionize on Dask."""

from __future__ import annotations

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
from prefect import get_run_logger, task
from pydantic import BaseModel, Field

from catalog.datasets import Catalog
from catalog.readers import ROW_COLUMN, SOURCE_COLUMN, read_source
from catalog.schemas import EVENTS, TRANSACTIONS, check_contract
from infra.dask import dask_scheduler
from infra.tracking import RunLogger
from ops.sessionize import build_vocabulary, encode_events, sessionize
from ops.timestamps import to_epoch_ms
from ops.validation import (
    event_checks,
    first_failure,
    quarantine_rows,
    transaction_checks,
)
from tasks.io import log_dataset


class IngestParams(BaseModel):
    vocabulary_size: int = Field(64, ge=2, description="most frequent events kept as tokens")
    max_sequence_length: int = Field(32, ge=2, description="last events kept per session")
    max_session_events: int = Field(
        5000, ge=2, description="longer sessions are quarantined as absurd"
    )
    partitions: int = Field(8, ge=1, description="Dask partitions for sessionization")


class IngestResult(BaseModel):
    input_digests: dict[str, str]
    digests: dict[str, str]
    counts: dict[str, dict[str, int]]
    vocabulary_size: int


def _frame(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas(types_mapper={pa.string(): pd.StringDtype()}.get)


def _validate_transactions(table: pa.Table) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = _frame(table)
    ts_ms, ts_bad = to_epoch_ms(table.column("ts"))
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
    return accepted.reset_index(drop=True), quarantine


def _validate_events(
    table: pa.Table, known_txns: pd.Index, max_session_events: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = _frame(table)
    ts_ms, ts_bad = to_epoch_ms(table.column("ts"))
    checks = event_checks(frame, ts_bad)
    txn = frame["txn_id"].astype(str)
    checks.append((~txn.isin(known_txns).to_numpy(), "event of an unknown or rejected transaction"))
    session_size = txn.map(txn.value_counts())
    checks.append(
        (
            (session_size > max_session_events).to_numpy(),
            f"session longer than {max_session_events} events",
        )
    )
    reasons = first_failure(len(frame), checks)
    quarantine = quarantine_rows(frame, reasons, SOURCE_COLUMN, ROW_COLUMN)
    ok = pd.isna(reasons)
    accepted = pd.DataFrame(
        {"txn_id": txn[ok].to_numpy(dtype=object), "ts": ts_ms[ok], "event": frame["event"][ok]}
    )
    return accepted, quarantine


def _sessionize_on_dask(
    events: pd.DataFrame, vocabulary: list[str], params: IngestParams
) -> pa.Table:
    """Shuffle by transaction so each session sits in one partition, then sessionize partitions."""
    events = events.assign(token=encode_events(events["event"], vocabulary)).drop(columns="event")
    ddf = dd.from_pandas(events, npartitions=params.partitions).shuffle(
        "txn_id", npartitions=params.partitions
    )
    parts = [
        dask.delayed(_sessionize_partition)(part, params.max_sequence_length)
        for part in ddf.to_delayed()
    ]
    return pa.concat_tables(dask.compute(*parts))


def _sessionize_partition(part: pd.DataFrame, max_len: int) -> pa.Table:
    return sessionize(
        part["txn_id"].to_numpy(dtype=object).astype(str),
        part["ts"].to_numpy(dtype=np.int64),
        part["token"].to_numpy(dtype=np.int32),
        max_len,
    )


@task(name="ingest", retries=0)
def ingest(
    events_uri: str, transactions_uri: str, output_root: str, params: IngestParams, run_id: str
) -> IngestResult:
    """Fatal defects stop here, before anything is written; row defects go to quarantine."""
    logger = get_run_logger()
    raw_txns, txns_digest = read_source(transactions_uri)
    raw_events, events_digest = read_source(events_uri)
    check_contract(raw_txns, TRANSACTIONS, transactions_uri)
    check_contract(raw_events, EVENTS, events_uri)

    txns, txn_quarantine = _validate_transactions(raw_txns)
    events, event_quarantine = _validate_events(
        raw_events, pd.Index(txns["txn_id"]), params.max_session_events
    )
    has_events = txns["txn_id"].isin(events["txn_id"].unique()).to_numpy()
    orphan_q = quarantine_rows(
        txns,
        first_failure(len(txns), [(~has_events, "transaction has no events")]),
        SOURCE_COLUMN,
        ROW_COLUMN,
    )
    txns = txns.loc[has_events].drop(columns=[SOURCE_COLUMN, ROW_COLUMN]).reset_index(drop=True)

    vocabulary = build_vocabulary(events["event"].value_counts(), params.vocabulary_size)
    with dask_scheduler():
        sequences = _sessionize_on_dask(events, vocabulary, params)

    quarantine = pd.concat([txn_quarantine, orphan_q, event_quarantine], ignore_index=True)
    counts = {
        "transactions": {
            "rows_in": raw_txns.num_rows,
            "accepted": len(txns),
            "quarantined": len(txn_quarantine) + len(orphan_q),
        },
        "events": {
            "rows_in": raw_events.num_rows,
            "accepted": len(events),
            "quarantined": len(event_quarantine),
        },
    }
    catalog = Catalog(output_root)
    digests = {
        "transactions": catalog.save_table("transactions", txns),
        "sequences": catalog.save_table("sequences", sequences),
        "vocabulary": catalog.save_json("vocabulary", vocabulary),
        "quarantine": catalog.save_table("quarantine", quarantine),
    }
    catalog.save_json("ingest_counts", counts)

    tracker = RunLogger(run_id)
    tracker.params(params.model_dump(), prefix="ingest.")
    for source, c in counts.items():
        tracker.metrics({f"ingest.{source}.{k}": v for k, v in c.items()})
        logger.info(
            "%s: %d rows in = %d accepted + %d quarantined",
            source,
            c["rows_in"],
            c["accepted"],
            c["quarantined"],
        )
    tracker.dataset(transactions_uri, "transactions", txns_digest, "input", raw_txns.num_rows)
    tracker.dataset(events_uri, "events", events_digest, "input", raw_events.num_rows)
    log_dataset(tracker, catalog, "quarantine", "ingest")
    log_dataset(tracker, catalog, "vocabulary", "ingest")
    inputs = {"transactions": txns_digest, "events": events_digest}
    return IngestResult(
        input_digests=inputs, digests=digests, counts=counts, vocabulary_size=len(vocabulary)
    )
