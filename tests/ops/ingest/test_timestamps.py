from __future__ import annotations

import datetime as dt

import pyarrow as pa

from ops.ingest import to_epoch_ms

MIDNIGHT = 1767225600000  # 2026-01-01T00:00:00Z


def test_every_allowed_form_reads_as_the_same_instant() -> None:
    forms = [
        pa.array(["2026-01-01T00:00:00Z"]),
        pa.array(["2026-01-01T02:00:00+02:00"]),
        pa.array(["2026-01-01 00:00:00"]),  # naive text is UTC
        pa.array([str(MIDNIGHT)]),  # epoch ms written as text
        pa.array([MIDNIGHT]),
        pa.array([dt.datetime(2026, 1, 1)], pa.timestamp("us")),  # naive timestamp is UTC
        pa.array(
            [dt.datetime(2026, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))],
            pa.timestamp("ms", tz="+01:00"),
        ),
    ]
    for values in forms:
        ms, bad = to_epoch_ms(values)
        assert ms.tolist() == [MIDNIGHT] and not bad.any(), values


def test_unreadable_and_missing_values_are_flagged_not_guessed() -> None:
    _ms, bad = to_epoch_ms(pa.array(["yesterday", None, "2026-13-45T00:00:00Z", "2026-01-01"]))
    assert bad.tolist() == [True, True, True, False]
    _, bad_numbers = to_epoch_ms(pa.array([1.0, float("nan"), None]))
    assert bad_numbers.tolist() == [False, True, True]
