from __future__ import annotations

import numpy as np
import pandas as pd

from ops.ingest import first_failure, quarantine_rows, transaction_checks
from ops.ingest._validation import event_checks


def frame(**columns: list) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    return pd.DataFrame({**columns, "_source": "f.csv", "_row": range(n)})


def test_each_row_gets_its_first_failed_reason() -> None:
    txns = frame(txn_id=["a", None, "c", "a", "d", "e"], label=[0, 1, 2, 0, None, 1])
    amount = np.array([1.0, 2.0, 3.0, 4.0, -1.0, np.nan])
    ts_bad = np.array([False, False, False, False, False, True])
    reasons = first_failure(len(txns), transaction_checks(txns, ts_bad, amount))
    assert reasons.tolist() == [
        None,
        "txn_id is missing",
        "label is not 0 or 1",
        "duplicate txn_id (first one kept)",
        "amount is negative",
        "ts is not a timestamp (expected ISO-8601, epoch milliseconds or timestamp)",
    ]


def test_a_duplicate_of_a_rejected_row_is_not_a_duplicate() -> None:
    txns = frame(txn_id=["a", "a"])
    reasons = first_failure(2, transaction_checks(txns, np.zeros(2, bool), np.array([-1.0, 1.0])))
    assert reasons.tolist() == ["amount is negative", None]


def test_quarantine_names_the_file_the_row_and_keeps_the_record() -> None:
    events = frame(txn_id=["a", "b", " "], event=["home", "", "cart"])
    reasons = first_failure(3, event_checks(events, np.zeros(3, bool)))
    q = quarantine_rows(events, reasons, "_source", "_row")
    assert q[["source", "row", "reason"]].values.tolist() == [
        ["f.csv", 1, "event is missing"],
        ["f.csv", 2, "txn_id is missing"],
    ]
    assert '"txn_id":"b"' in q["record"].iloc[0]
