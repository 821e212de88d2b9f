"""Window: where a rolling window ends when the caller does not say, the data's latest time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from prefect import task

from catalog.readers import read_source
from catalog.schemas import TRANSACTIONS, InputError
from ops.ingest import to_epoch_ms


@task(name="latest-time")
def latest_time(transactions: str) -> datetime:
    """Just after the latest readable transaction time (the window's end is exclusive)."""
    table, _ = read_source(transactions, TRANSACTIONS)
    ms, bad = to_epoch_ms(table.column("ts"))
    if bad.all():
        raise InputError(f"{transactions}: column 'ts' has no readable timestamp")
    latest = int(np.max(ms[~bad]))
    return datetime.fromtimestamp(latest / 1000, UTC) + timedelta(milliseconds=1)
