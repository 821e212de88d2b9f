"""Timestamps as the contract allows them: zoned or naive timestamps, ISO-8601 text, epoch ms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def to_epoch_ms(values: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Return epoch milliseconds (int64) and a mask of values that could not be read.

    Naive timestamps are taken as UTC. Integers are epoch milliseconds; text is ISO-8601 with or
    without an offset. An unreadable value is flagged, never guessed, so it can be quarantined.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    kind = values.type
    if pa.types.is_timestamp(kind):
        ms = pc.cast(values, pa.timestamp("ms", tz=kind.tz)).cast(pa.int64())
        out = ms.to_numpy(zero_copy_only=False)
        return _split_nulls(out, values.is_null().to_numpy(zero_copy_only=False))
    if pa.types.is_date(kind):
        return to_epoch_ms(pc.cast(values, pa.timestamp("ms")))
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        raw = values.to_numpy(zero_copy_only=False).astype("float64")
        bad = ~np.isfinite(raw)
        return np.where(bad, 0, raw).astype(np.int64), bad
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        text = pd.Series(values.to_numpy(zero_copy_only=False), dtype="object")
        parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
        epoch = text.str.fullmatch(r"\s*\d{10,}\s*").fillna(False).astype(bool)
        if epoch.any():  # epoch milliseconds written as text, common in CSV exports
            millis = pd.to_numeric(text[epoch]).astype("int64")
            parsed[epoch] = pd.to_datetime(millis, unit="ms", utc=True)
        bad = parsed.isna().to_numpy()
        ms = parsed.dt.as_unit("ms").astype("int64") if len(parsed) else parsed
        return np.where(bad, 0, np.asarray(ms, dtype=np.int64)), bad
    raise TypeError(f"expected a timestamp, ISO-8601 text or epoch milliseconds, got {kind}")


def _split_nulls(out: np.ndarray, null: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.where(null, 0, np.nan_to_num(out.astype("float64"))).astype(np.int64), null
