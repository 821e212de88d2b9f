"""Positions of text values among sorted distinct ids, by binary search over Arrow's buffers.

A piece of events holds some tens of thousands of distinct transaction ids; the ids it is
checked against are millions. Hashing either side for every piece costs the larger side on
every piece, so the whole ingest grows with pieces x ids (faster than the data). Searching the
piece's ids in ids sorted once costs the piece's ids x log(ids), whatever the window's size.
Ids are compared as bytes, which for UTF-8 is the order of code points, the order Python and
Arrow sort strings in.
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa


def sorted_positions(values: pa.Array, sorted_ids: pa.Array) -> np.ndarray:
    """Each value's position in ``sorted_ids`` (-1: absent; null values are absent).

    ``sorted_ids`` must be distinct, without nulls, and sorted in byte order.
    """
    out = np.full(len(values), -1, dtype=np.int64)
    if len(values) and len(sorted_ids):
        _search(*_text_buffers(values), *_text_buffers(sorted_ids), out)
        if values.null_count:
            out[values.is_null().to_numpy(zero_copy_only=False)] = -1
    return out


def _text_buffers(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The offsets (one per value, and the end) and the bytes of a text array.

    Read where they lie, without a copy, when the array is already ``large_string``.
    """
    values = values.cast(pa.large_string())
    _, offsets, data = values.buffers()
    start = values.offset
    offsets = np.frombuffer(offsets, dtype=np.int64)[start : start + len(values) + 1]
    data = np.zeros(0, dtype=np.uint8) if data is None else np.frombuffer(data, dtype=np.uint8)
    return offsets, data


@numba.njit(cache=True, nogil=True)
def _compare(
    a: np.ndarray, a_start: int, a_end: int, b: np.ndarray, b_start: int, b_end: int
) -> int:
    """-1, 0 or 1 as ``a[a_start:a_end]`` sorts before, with or after ``b[b_start:b_end]``."""
    size = min(a_end - a_start, b_end - b_start)
    for k in range(size):
        if a[a_start + k] != b[b_start + k]:
            return -1 if a[a_start + k] < b[b_start + k] else 1
    if a_end - a_start == b_end - b_start:
        return 0
    return -1 if a_end - a_start < b_end - b_start else 1


@numba.njit(cache=True, nogil=True)
def _search(
    value_offsets: np.ndarray,
    value_bytes: np.ndarray,
    id_offsets: np.ndarray,
    id_bytes: np.ndarray,
    out: np.ndarray,
) -> None:
    n_ids = len(id_offsets) - 1
    for i in range(len(value_offsets) - 1):
        v_start, v_end = value_offsets[i], value_offsets[i + 1]
        lo, hi = 0, n_ids
        while lo < hi:  # the first id not before the value
            mid = (lo + hi) // 2
            order = _compare(
                id_bytes, id_offsets[mid], id_offsets[mid + 1], value_bytes, v_start, v_end
            )
            if order < 0:
                lo = mid + 1
            else:
                hi = mid
        if lo < n_ids and (
            _compare(id_bytes, id_offsets[lo], id_offsets[lo + 1], value_bytes, v_start, v_end) == 0
        ):
            out[i] = lo
