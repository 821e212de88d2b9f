"""The corpus of bad inputs: every defect in ``docs/ingest_defects.md`` and its outcome.

Each case starts from a small valid shop (6 transactions, 3 events each, as CSV) and breaks one
thing. Fatal defects must raise ``InputError`` naming the file (and the column where there is
one) and write nothing; row defects must put exactly the broken rows in the quarantine, with
file, row number and reason, and keep ``rows_in = accepted + quarantined + outside_window``.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from catalog.schemas import InputError
from ops.ingest import NO_EVENTS
from ops.ingest._validation import UNKNOWN_TXN
from tasks.ingest import IngestParams, run_ingest

DOC = Path(__file__).resolve().parents[2] / "docs" / "ingest_defects.md"
TS = "ts is not a timestamp (expected ISO-8601, epoch milliseconds or timestamp)"
EVENT_NAMES = ["home", "search", "checkout"]


def base_transactions() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "txn_id": [f"t{i}" for i in range(6)],
            "ts": [f"2026-01-01T00:{10 * i:02d}:00Z" for i in range(6)],
            "amount": [10.0 + i for i in range(6)],
            "label": [0, 1, 0, 0, 1, 0],
        }
    )


def base_events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "txn_id": [f"t{i}" for i in range(6) for _ in range(3)],
            "ts": [f"2026-01-01T00:{10 * i:02d}:{5 * k:02d}Z" for i in range(6) for k in range(3)],
            "event": EVENT_NAMES * 6,
        }
    )


def write(tmp: Path, txns: pd.DataFrame, events: pd.DataFrame) -> tuple[str, str]:
    txns.to_csv(tmp / "transactions.csv", index=False)
    events.to_csv(tmp / "events.csv", index=False)
    return str(tmp / "events.csv"), str(tmp / "transactions.csv")


def add(frame: pd.DataFrame, **row: object) -> pd.DataFrame:
    return pd.concat([frame, pd.DataFrame([row])], ignore_index=True)


# --- fatal defects ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Fatal:
    id: str
    build: Callable[[Path], tuple[str, str]]
    message: str  # regex the InputError must match
    file: str  # file (or folder) name the message must contain
    column: str | None = None


def _valid(tmp: Path) -> tuple[str, str]:
    return write(tmp, base_transactions(), base_events())


def _replace_txns(text: bytes, name: str = "transactions.csv") -> Callable[[Path], tuple[str, str]]:
    def build(tmp: Path) -> tuple[str, str]:
        events, _ = _valid(tmp)
        (tmp / name).write_bytes(text)
        return events, str(tmp / name)

    return build


def _replace_events(text: bytes, name: str = "events.csv") -> Callable[[Path], tuple[str, str]]:
    def build(tmp: Path) -> tuple[str, str]:
        _, txns = _valid(tmp)
        (tmp / name).write_bytes(text)
        return str(tmp / name), txns

    return build


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def _no_data_dir(tmp: Path) -> tuple[str, str]:
    _, txns = _valid(tmp)
    (tmp / "events_dir").mkdir()
    (tmp / "events_dir" / "README.txt").write_text("exports land here")
    return str(tmp / "events_dir"), txns


def _missing_path(tmp: Path) -> tuple[str, str]:
    events, _ = _valid(tmp)
    return events, str(tmp / "nowhere.parquet")


def _types_disagree(tmp: Path) -> tuple[str, str]:
    events, _ = _valid(tmp)
    folder = tmp / "txns_dir"
    folder.mkdir()
    txns = base_transactions()
    txns.iloc[:3].to_parquet(folder / "part-0.parquet")
    txns.iloc[3:].assign(amount=lambda f: f["amount"].map(str)).to_parquet(
        folder / "part-1.parquet"
    )
    return events, str(folder)


def _one_file_lacks_column(tmp: Path) -> tuple[str, str]:
    _, txns = _valid(tmp)
    folder = tmp / "events_dir"
    folder.mkdir()
    events = base_events()
    events.iloc[:9].to_parquet(folder / "part-0.parquet")
    events.iloc[9:].drop(columns="event").to_parquet(folder / "part-1.parquet")
    return str(folder), txns


def _gz(data: bytes) -> bytes:
    return gzip.compress(data)


def _jsonl(rows: list[dict]) -> bytes:
    return "\n".join(json.dumps(r) for r in rows).encode() + b"\n"


TXN_CSV = _csv(base_transactions())
FATAL = [
    Fatal(
        "F01-missing-txn_id",
        _replace_txns(_csv(base_transactions().drop(columns="txn_id"))),
        r"transactions input is missing required column 'txn_id'",
        "transactions.csv",
        "txn_id",
    ),
    Fatal(
        "F02-missing-amount",
        _replace_txns(_csv(base_transactions().drop(columns="amount"))),
        r"missing required column 'amount' \(expected a number\)",
        "transactions.csv",
        "amount",
    ),
    Fatal(
        "F03-missing-event",
        _replace_events(_csv(base_events().drop(columns="event"))),
        r"events input is missing required column 'event'",
        "events.csv",
        "event",
    ),
    Fatal(
        "F04-missing-events-ts",
        _replace_events(_csv(base_events().drop(columns="ts"))),
        r"missing required column 'ts' \(expected a timestamp",
        "events.csv",
        "ts",
    ),
    Fatal(
        "F05-corrupt-parquet",
        _replace_events(b"PAR1 this is not parquet", "events.parquet"),
        r"unreadable or corrupt parquet file",
        "events.parquet",
    ),
    Fatal(
        "F06-truncated-gzip",
        _replace_txns(_gz(TXN_CSV)[:40], "transactions.csv.gz"),
        r"unreadable or corrupt csv file",
        "transactions.csv.gz",
    ),
    Fatal(
        "F07-gz-name-not-gzip",
        _replace_txns(TXN_CSV, "transactions.csv.gz"),
        r"unreadable or corrupt csv file: .*gzip",
        "transactions.csv.gz",
    ),
    Fatal(
        "F08-header-only",
        _replace_txns(b"txn_id,ts,amount\n"),
        r"input is empty \(no rows\)",
        "transactions.csv",
    ),
    Fatal(
        "F09-zero-bytes",
        _replace_events(b""),
        r"file is empty \(0 bytes\)",
        "events.csv",
    ),
    Fatal(
        "F10-unknown-extension",
        _replace_txns(b"PK\x03\x04", "transactions.xlsx"),
        r"unknown file type \(expected \.parquet, \.csv, \.jsonl",
        "transactions.xlsx",
    ),
    Fatal(
        "F11-directory-without-data",
        _no_data_dir,
        r"directory holds no \.parquet, \.csv or \.jsonl files",
        "events_dir",
    ),
    Fatal("F12-no-such-path", _missing_path, r"no such file or directory", "nowhere.parquet"),
    Fatal(
        "F13-ts-of-impossible-type",
        _replace_txns(_csv(base_transactions().assign(ts=True))),
        r"column 'ts' of transactions has type bool, which cannot be read as a timestamp",
        "transactions.csv",
        "ts",
    ),
    Fatal(
        "F14-fractional-txn_id",
        _replace_txns(_csv(base_transactions().assign(txn_id=[i + 0.5 for i in range(6)]))),
        r"column 'txn_id' of transactions has type double, which cannot be read as text",
        "transactions.csv",
        "txn_id",
    ),
    Fatal(
        "F15-nested-amount",
        _replace_txns(
            _jsonl(
                [
                    {"txn_id": f"t{i}", "ts": "2026-01-01T00:00:00Z", "amount": {"value": i}}
                    for i in range(6)
                ]
            ),
            "transactions.jsonl",
        ),
        r"column 'amount' of transactions has type struct.*cannot be read as a number",
        "transactions.jsonl",
        "amount",
    ),
    Fatal(
        "F16-files-disagree-on-types",
        _types_disagree,
        r"part-1.parquet: column 'amount' has type (large_)?string but .*part-0.parquet has double",
        "part-1.parquet",
        "amount",
    ),
    Fatal(
        "F17-one-file-lacks-required-column",
        _one_file_lacks_column,
        r"part-1.parquet: events input is missing required column 'event'",
        "part-1.parquet",
        "event",
    ),
    Fatal(
        "F18-ragged-csv-row",
        _replace_txns(TXN_CSV + b"t9,2026-01-01T00:00:00Z,3.0,0,surplus\n"),
        r"unreadable or corrupt csv file: .*Expected 4 columns, got 5",
        "transactions.csv",
    ),
    Fatal(
        "F19-invalid-json-line",
        _replace_events(
            _jsonl([{"txn_id": "t0", "ts": "2026-01-01T00:00:00Z", "event": "home"}]) + b"{oops\n",
            "events.jsonl",
        ),
        r"unreadable or corrupt json file",
        "events.jsonl",
    ),
    Fatal(
        "F20-duplicate-column",
        _replace_txns(
            b"txn_id,ts,amount,amount\nt0,2026-01-01T00:00:00Z,1,2\n",
        ),
        r"column 'amount' of transactions appears 2 times; expected one",
        "transactions.csv",
        "amount",
    ),
    Fatal(
        "F21-required-column-all-null",
        _replace_events(
            _jsonl([{"txn_id": f"t{i}", "ts": None, "event": "home"} for i in range(6)]),
            "events.jsonl",
        ),
        r"required column 'ts' of events holds no values at all",
        "events.jsonl",
        "ts",
    ),
]


@pytest.mark.parametrize("case", FATAL, ids=[c.id for c in FATAL])
def test_fatal_defect_stops_before_writing(tmp_path: Path, case: Fatal) -> None:
    events, txns = case.build(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(InputError) as err:
        run_ingest(events, txns, str(out), IngestParams(partitions=2))
    message = str(err.value)
    assert re.search(case.message, message), message
    assert case.file in message, message
    if case.column:
        assert f"'{case.column}'" in message, message
    assert "\n" not in message, "one clear line"
    assert not out.exists(), "nothing may be written on a fatal defect"


# --- row defects -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RowDefect:
    id: str
    mutate: Callable[[pd.DataFrame, pd.DataFrame], tuple[pd.DataFrame, pd.DataFrame]]
    # every quarantined row: (file, row number, reason)
    quarantined: set[tuple[str, int, str]]
    params: dict = field(default_factory=dict)


def _t(**row: object) -> Callable[[pd.DataFrame, pd.DataFrame], tuple[pd.DataFrame, pd.DataFrame]]:
    """Append one transaction row (without events) to the valid shop."""
    full = {"txn_id": "t6", "ts": "2026-01-01T01:00:00Z", "amount": 5.0, "label": 0, **row}
    return lambda t, e: (add(t, **full), e)


def _e(**row: object) -> Callable[[pd.DataFrame, pd.DataFrame], tuple[pd.DataFrame, pd.DataFrame]]:
    """Append one event row to the valid shop."""
    full = {"txn_id": "t0", "ts": "2026-01-01T00:00:30Z", "event": "home", **row}
    return lambda t, e: (t, add(e, **full))


def _rejected_txn_with_event(t: pd.DataFrame, e: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    t = add(t, txn_id="t6", ts="2026-01-01T01:00:00Z", amount=-5.0, label=0)
    return t, add(e, txn_id="t6", ts="2026-01-01T01:00:05Z", event="home")


def _long_session(t: pd.DataFrame, e: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    for k in range(3):
        e = add(e, txn_id="t0", ts=f"2026-01-01T00:00:{20 + k}Z", event="search")
    return t, e


TX, EV = "transactions.csv", "events.csv"
ROWS = [
    RowDefect("R01-null-txn_id", _t(txn_id=None), {(TX, 6, "txn_id is missing")}),
    RowDefect("R02-blank-txn_id", _t(txn_id="   "), {(TX, 6, "txn_id is missing")}),
    RowDefect(
        "R03-duplicate-txn_id", _t(txn_id="t1"), {(TX, 6, "duplicate txn_id (first one kept)")}
    ),
    RowDefect("R04-unparseable-ts", _t(ts="yesterday"), {(TX, 6, TS)}),
    RowDefect("R05-null-ts", _t(ts=None), {(TX, 6, TS)}),
    RowDefect("R06-negative-amount", _t(amount=-1.0), {(TX, 6, "amount is negative")}),
    RowDefect(
        "R07-nan-amount", _t(amount=float("nan")), {(TX, 6, "amount is missing or not a number")}
    ),
    RowDefect("R08-text-amount", _t(amount="ten"), {(TX, 6, "amount is missing or not a number")}),
    RowDefect("R09-infinite-amount", _t(amount=float("inf")), {(TX, 6, "amount is infinite")}),
    RowDefect("R10-label-not-0-1", _t(label=2), {(TX, 6, "label is not 0 or 1")}),
    RowDefect("R11-label-text", _t(label="yes"), {(TX, 6, "label is not 0 or 1")}),
    RowDefect("R12-transaction-without-events", _t(), {(TX, 6, NO_EVENTS)}),
    RowDefect("R13-event-null-txn_id", _e(txn_id=None), {(EV, 18, "txn_id is missing")}),
    RowDefect("R14-event-null-event", _e(event=None), {(EV, 18, "event is missing")}),
    RowDefect("R15-event-unparseable-ts", _e(ts="2026-13-45T99:00:00"), {(EV, 18, TS)}),
    RowDefect("R16-event-null-ts", _e(ts=None), {(EV, 18, TS)}),
    RowDefect("R17-event-of-unknown-txn", _e(txn_id="t99"), {(EV, 18, UNKNOWN_TXN)}),
    RowDefect(
        "R18-event-of-rejected-txn",
        _rejected_txn_with_event,
        {(TX, 6, "amount is negative"), (EV, 18, UNKNOWN_TXN)},
    ),
    RowDefect(
        "R19-absurdly-long-session",
        _long_session,
        {(EV, r, "session longer than 5 events") for r in (0, 1, 2, 18, 19, 20)}
        | {(TX, 0, NO_EVENTS)},
        params={"max_session_events": 5},
    ),
]


def _quarantine(out: Path) -> set[tuple[str, int, str]]:
    q = pd.read_parquet(out / "quarantine.parquet")
    return {(Path(s).name, int(r), str(why)) for s, r, why in q[["source", "row", "reason"]].values}


@pytest.mark.parametrize("case", ROWS, ids=[c.id for c in ROWS])
def test_row_defect_is_quarantined_with_file_row_and_reason(
    tmp_path: Path, case: RowDefect
) -> None:
    txns, events = case.mutate(base_transactions(), base_events())
    events_uri, txns_uri = write(tmp_path, txns, events)
    out = tmp_path / "out"
    result = run_ingest(events_uri, txns_uri, str(out), IngestParams(partitions=2, **case.params))
    assert _quarantine(out) == case.quarantined
    for source, frame in (("transactions", txns), ("events", events)):
        c = result.counts[source]
        assert c["rows_in"] == len(frame) == c["accepted"] + c["quarantined"] + c["outside_window"]
    record = pd.read_parquet(out / "quarantine.parquet")["record"].iloc[0]
    assert json.loads(record), "the rejected row's content is kept"


def test_valid_shop_is_accepted_whole(tmp_path: Path) -> None:
    events, txns = _valid(tmp_path)
    result = run_ingest(events, txns, str(tmp_path / "out"), IngestParams(partitions=2))
    assert result.counts == {
        "transactions": {"rows_in": 6, "accepted": 6, "quarantined": 0, "outside_window": 0},
        "events": {"rows_in": 18, "accepted": 18, "quarantined": 0, "outside_window": 0},
    }


# --- time window -----------------------------------------------------------------------------


def test_window_counts_rows_outside_it_and_keeps_defects_inside(tmp_path: Path) -> None:
    txns = add(base_transactions(), txn_id="t6", ts="2026-01-01T00:25:00Z", amount=-1.0, label=0)
    events = add(base_events(), txn_id="t99", ts="2026-01-01T00:25:00Z", event="home")
    events_uri, txns_uri = write(tmp_path, txns, events)
    out = tmp_path / "out"
    # t0..t5 sit at minutes 0, 10, ..., 50: the window [00:10, 00:30) keeps t1, t2 (and t6).
    params = IngestParams(partitions=2, start="2026-01-01T00:10:00", end="2026-01-01T00:30:00Z")
    result = run_ingest(events_uri, txns_uri, str(out), params)
    assert result.counts["transactions"] == {
        "rows_in": 7,
        "accepted": 2,
        "quarantined": 1,
        "outside_window": 4,
    }
    assert result.counts["events"] == {
        "rows_in": 19,
        "accepted": 6,
        "quarantined": 1,
        "outside_window": 12,
    }
    assert _quarantine(out) == {(TX, 6, "amount is negative"), (EV, 18, UNKNOWN_TXN)}
    kept = pd.read_parquet(out / "transactions.parquet")["txn_id"].tolist()
    assert sorted(kept) == ["t1", "t2"]


def test_window_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="must be before"):
        IngestParams(start="2026-01-02", end="2026-01-01")


def test_every_case_is_documented() -> None:
    doc = DOC.read_text()
    missing = [c.id for c in [*FATAL, *ROWS] if f"`{c.id}`" not in doc]
    assert not missing, f"add to {DOC.name}: {missing}"
    assert len(FATAL) + len(ROWS) >= 20
