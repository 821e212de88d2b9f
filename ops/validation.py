"""Row-level checks of the input contract: every row is accepted or quarantined with a reason.

Each check is a (mask, reason) pair; a row takes the first reason it fails, so the quarantine
explains the most basic defect and per source ``rows in = accepted + quarantined`` holds exactly.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

QUARANTINE_COLUMNS = ["source", "row", "txn_id", "reason", "record"]
Check = tuple[np.ndarray, str]


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
        (ts_bad, "ts is not a timestamp (expected ISO-8601, epoch milliseconds or timestamp)"),
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


def event_checks(frame: pd.DataFrame, ts_bad: np.ndarray) -> list[Check]:
    return [
        (missing_text(frame["txn_id"]), "txn_id is missing"),
        (ts_bad, "ts is not a timestamp (expected ISO-8601, epoch milliseconds or timestamp)"),
        (missing_text(frame["event"]), "event is missing"),
    ]
