"""Row-level checks of the input contract: every row is accepted or quarantined with a reason.

Each check is a (mask, reason) pair; a row takes the first reason it fails, so the quarantine
explains the most basic defect and per source ``rows in = accepted + quarantined`` holds exactly.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

QUARANTINE_COLUMNS = ["source", "row", "txn_id", "reason", "record"]
Check = tuple[np.ndarray, str]

UNKNOWN_TXN = "event of an unknown or rejected transaction"
NO_EVENTS = "transaction has no events"
TS_UNREADABLE = "ts is not a timestamp (expected ISO-8601, epoch milliseconds or timestamp)"


def first_failure(n_rows: int, checks: Iterable[Check]) -> np.ndarray:
    """The reason of the first failed check for each row, or ``None`` where all pass."""
    reasons = np.full(n_rows, None, dtype=object)
    for mask, reason in checks:
        reasons[np.asarray(mask, dtype=bool) & pd.isna(reasons)] = reason
    return reasons


def quarantine_rows(
    frame: pd.DataFrame, reasons: np.ndarray, source_col: str, row_col: str
) -> pd.DataFrame:
    """Quarantine records for rows with a reason: where they came from and what they held."""
    bad = ~pd.isna(reasons)
    rows = frame.loc[bad]
    record = rows.drop(columns=[source_col, row_col]).to_json(
        orient="records", lines=True, date_format="iso", default_handler=str
    )
    return pd.DataFrame(
        {
            "source": rows[source_col].astype(str).to_numpy(),
            "row": rows[row_col].to_numpy(dtype=np.int64),
            "txn_id": rows["txn_id"].astype("string").to_numpy(dtype=object, na_value=None),
            "reason": reasons[bad].astype(str),
            "record": record.splitlines() if len(rows) else [],
        },
        columns=QUARANTINE_COLUMNS,
    )


def missing_text(values: pd.Series) -> np.ndarray:
    text = values.astype("string")
    return (text.isna() | (text.str.strip() == "")).to_numpy(dtype=bool, na_value=True)


def later_duplicates(values: pd.Series, eligible: np.ndarray) -> np.ndarray:
    """Rows whose value already appeared in an earlier eligible row (the first one is kept)."""
    dup = np.zeros(len(values), dtype=bool)
    dup[eligible] = values[eligible].duplicated(keep="first").to_numpy()
    return dup


def transaction_checks(frame: pd.DataFrame, ts_bad: np.ndarray, amount: np.ndarray) -> list[Check]:
    """Defects of a transaction row on its own; duplicates are judged among otherwise valid rows."""
    checks: list[Check] = [
        (missing_text(frame["txn_id"]), "txn_id is missing"),
        (ts_bad, TS_UNREADABLE),
        (np.isnan(amount), "amount is missing or not a number"),
        (np.isinf(amount), "amount is infinite"),
        (amount < 0, "amount is negative"),
    ]
    if "label" in frame:
        label = pd.to_numeric(frame["label"], errors="coerce")
        bad = frame["label"].notna().to_numpy() & ~label.isin([0, 1]).to_numpy()
        checks.append((bad, "label is not 0 or 1"))
    valid = ~np.logical_or.reduce([m for m, _ in checks])
    checks.append((later_duplicates(frame["txn_id"], valid), "duplicate txn_id (first one kept)"))
    return checks


def missing_arrow_text(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """``missing_text`` in Arrow, for pieces of events too large to pay for pandas strings.

    A dictionary array is judged on its dictionary, once per distinct value, not once per row.
    """
    if isinstance(values, pa.DictionaryArray):
        blank = np.append(missing_arrow_text(values.dictionary), True)  # last: a null index
        index = values.indices.fill_null(len(values.dictionary))
        return blank[index.to_numpy(zero_copy_only=False)]
    text = pc.cast(values, pa.string())
    blank = pc.equal(pc.utf8_trim_whitespace(text), "")
    return pc.or_kleene(pc.is_null(text), blank).fill_null(True).to_numpy(zero_copy_only=False)


def event_checks(frame: pd.DataFrame | pa.Table, ts_bad: np.ndarray) -> list[Check]:
    """Defects of an event row on its own."""

    def column(name: str) -> pa.Array | pa.ChunkedArray:
        return frame.column(name) if isinstance(frame, pa.Table) else pa.array(frame[name])

    return [
        (missing_arrow_text(column("txn_id")), "txn_id is missing"),
        (ts_bad, TS_UNREADABLE),
        (missing_arrow_text(column("event")), "event is missing"),
    ]
