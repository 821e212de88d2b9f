"""Per-transaction session statistics that investigators read: path, pace, duration.

Risk scoring and narratives need "how fast" and "which way" in human units (seconds, page
names), which the learned embedding cannot give; these come straight from the sequences.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

import numba
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ops.features._page_dwell import PageDwell, dwell_fit, flat_sessions


def session_stats(
    tokens: Sequence[np.ndarray],
    dwell: Sequence[np.ndarray],
    vocabulary: Sequence[str],
    path_length: int = 8,
    page_dwell: PageDwell | None = None,
) -> pa.Table:
    """Measure each session's pace and path, in human units.

    Parameters
    ----------
    tokens, dwell : sequence of ndarray
        Each session's page tokens and seconds before each event.
    vocabulary : sequence of str
        Page names; any character is allowed, since a path is a list, never a joined string.
    path_length : int
        Pages kept in ``path``.
    page_dwell : PageDwell, optional
        The window's fitted typical dwell per page; adds how the dwell fits the pages
        (`dwell_fit`).

    Returns
    -------
    pyarrow.Table
        ``median_dwell``, ``dwell_cv`` (gaps after the first event), ``duration`` (s),
        ``n_events`` and ``path`` (a list of the first ``path_length`` page names); a
        measure that does not apply is null. In Arrow, as the catalog stores it: the paths
        as Python objects, made and then read back into Arrow, took 2.1-2.6 s at 3M
        sessions. A path's pages are dictionary-encoded, codes into the page names: a
        string per page was 230 MB at 3M sessions. ``.to_pandas()`` gives each path as an
        array of ``str``.
    """
    events, flat_tokens, flat = flat_sessions(tokens, dwell)
    median, mean, std, duration = _session_moments(flat, events)
    with np.errstate(divide="ignore", invalid="ignore"):
        cv = np.where(mean > 0, std / mean, np.nan)
    measures = {
        "median_dwell": median.astype(flat.dtype, copy=False),  # as the dwell is given
        "dwell_cv": cv,
        "duration": duration.astype(flat.dtype, copy=False),
        "n_events": events,
    }
    # NaN becomes null, as from a DataFrame: SQL and JSON rules read a missing value
    columns = {name: pa.array(values, from_pandas=True) for name, values in measures.items()}
    columns["path"] = _first_pages(events, flat_tokens, vocabulary, path_length)
    if page_dwell is not None:
        fit = dwell_fit(page_dwell, tokens, dwell, vocabulary)
        columns |= {name: pa.array(fit[name].to_numpy(), from_pandas=True) for name in fit}
    return pa.table(columns)


def _first_pages(
    lengths: np.ndarray, flat_tokens: np.ndarray, vocabulary: Sequence[str], length: int
) -> pa.ListArray:
    """Each session's first ``length`` page names.

    ``lengths``: each session's steps, which lie end to end in ``flat_tokens``. Built by
    Arrow: a Python list per session took 2.4 s to build at 1M sessions, these 0.4 s. Only
    the kept steps are copied (at most ``length`` a session), in one pass: their positions,
    made as arrays first, were two int64 arrays of every kept step (benchmarks/README.md).
    """
    kept = np.minimum(lengths, length)
    offsets = np.r_[0, np.cumsum(kept)]
    names = pa.array(["<pad>", "<oov>", *vocabulary], pa.string())
    leading = pa.array(_leading(flat_tokens, lengths, kept, int(offsets[-1])))
    pages = pa.DictionaryArray.from_arrays(leading, names)
    return pa.ListArray.from_arrays(offsets.astype(np.int32), pages)


@numba.njit(cache=True)
def _leading(values: np.ndarray, lengths: np.ndarray, kept: np.ndarray, total: int) -> np.ndarray:
    """The first ``kept[i]`` of each run ``i`` of ``values`` (``lengths[i]`` long), end to end."""
    out = np.empty(total, values.dtype)
    start = at = 0
    for i in range(len(lengths)):
        out[at : at + kept[i]] = values[start : start + kept[i]]
        at += kept[i]
        start += lengths[i]
    return out


@numba.njit(cache=True)
def _session_moments(
    dwell: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each session's pace: its gaps' median, mean and spread, and its total dwell.

    Session ``i`` is ``lengths[i]`` steps of ``dwell``, end to end; a gap is a step after its
    first. Without a gap the median, mean and (population) standard deviation are NaN; without
    a step, the total too. One pass per session, in float64: pandas' group-bys hashed every
    step's session, 51M steps into 3M groups in 5 of session_stats' 8 s at 3M sessions.
    """
    n = len(lengths)
    moments = np.full((4, n), np.nan)
    median, mean, std, duration = moments[0], moments[1], moments[2], moments[3]
    gaps = np.empty(max(lengths.max() - 1, 0) if n else 0)
    start = 0
    for s in range(n):
        first, k = start, lengths[s] - 1  # the session's first step, and its gaps
        start += lengths[s]
        if k < 0:
            continue
        total = 0.0
        for i in range(k):
            gaps[i] = dwell[first + 1 + i]
            total += gaps[i]
        duration[s] = dwell[first] + total
        if k > 0:
            m = total / k
            squares = 0.0
            for i in range(k):
                squares += (gaps[i] - m) ** 2
            median[s], mean[s], std[s] = np.median(gaps[:k]), m, np.sqrt(squares / k)
    return median, mean, std, duration


def path_keys(paths: pd.Series) -> list[tuple[str, ...] | None]:
    """Paths as hashable tuples of page names (``None`` where missing), for counting.

    A path is a list of names: Shoal's own ``behaviour`` table stores lists, and Parquet
    hands them back as arrays. A plain string is taken as a single page, never split, so a
    name holding ``>``, ``|`` or commas stays one page.
    """
    return [_path_key(p) for p in paths]


def path_codes(paths: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Each path's code among the distinct paths (-1 where missing), and where each first occurs.

    The codes are ``pd.factorize(path_keys(paths))``'s, in order of first appearance, without
    a tuple per row: the pages of every path are factorised once, and each path becomes the
    bytes of its page codes, which Arrow encodes (a third of the time at 1M rows).

    Returns
    -------
    codes : ndarray (n,) int64
    first : ndarray (n_distinct,) int64
        The position of each distinct path's first row: ``paths.iloc[first[c]]`` is path ``c``.
    """
    if isinstance(paths.dtype, pd.ArrowDtype) and _is_list(paths.dtype.pyarrow_dtype):
        return _arrow_path_codes(paths.array.__arrow_array__().combine_chunks())
    values = paths.to_numpy(dtype=object)
    n = len(values)
    if n and set(map(type, values)) <= {np.ndarray, list, tuple}:  # as Parquet hands them back
        lengths = np.fromiter(map(len, values), np.int64, n)  # no Python call per row
        present = np.ones(n, dtype=bool)
        flat = np.concatenate([np.asarray(p, dtype=object) for p in values])
    else:
        lengths = np.fromiter(
            (-1 if _missing(p) else 1 if isinstance(p, str) else len(p) for p in values),
            np.int64,
            n,
        )
        present = lengths >= 0
        pieces = [[p] if isinstance(p, str) else p for p in values[present]]
        flat = np.concatenate([np.asarray(p, dtype=object) for p in pieces]) if pieces else []
    flat = np.asarray(flat, dtype=object)
    if pd.api.types.infer_dtype(flat, skipna=False) not in ("string", "empty"):
        flat = flat.astype(str).astype(object)  # pages counted by their names, as path_keys
    page, _ = pd.factorize(flat)
    return _codes_of_page_runs(page, lengths, present)


def _is_list(kind: pa.DataType) -> bool:
    return pa.types.is_list(kind) or pa.types.is_large_list(kind)


def _arrow_path_codes(paths: pa.ListArray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`path_codes` of Arrow lists: pages factorised by Arrow, no Python object a page.

    The pages are coded in order of first appearance, as ``pd.factorize`` codes them, so the
    paths' codes equal those of the same lists as Python objects. A null page is a page of
    its own.
    """
    present = paths.is_valid().to_numpy(zero_copy_only=False)
    lengths = pc.list_value_length(paths).fill_null(0).to_numpy().astype(np.int64)
    pages = pc.list_flatten(paths)
    if _is_names_dictionary(pages.type) and _all_distinct(pages.dictionary):
        # session_stats' pages: their codes are the names' already
        page = pages.indices.fill_null(len(pages.dictionary)).to_numpy().astype(np.int64)
        return _codes_of_page_runs(page, lengths, present)
    if not pa.types.is_string(pages.type) and not pa.types.is_large_string(pages.type):
        pages = pc.cast(pages, pa.large_string())  # counted by their names, as path_keys
    page = pc.dictionary_encode(pages, null_encoding="encode").indices.to_numpy()
    return _codes_of_page_runs(page, lengths, present)


def _is_names_dictionary(kind: pa.DataType) -> bool:
    """Whether ``kind`` is a dictionary of page names (strings)."""
    return pa.types.is_dictionary(kind) and (
        pa.types.is_string(kind.value_type) or pa.types.is_large_string(kind.value_type)
    )


def _all_distinct(names: pa.Array) -> bool:
    """Whether each name is there once, and none missing: a code then stands for a name."""
    return names.null_count == 0 and pc.count_distinct(names).as_py() == len(names)


def _codes_of_page_runs(
    page: np.ndarray, lengths: np.ndarray, present: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Codes of the paths whose pages, end to end, have codes ``page``; see :func:`path_codes`.

    Each path is keyed by one integer where its pages' codes fit in 63 bits as the digits of
    a number (kept paths are short: eight pages by default), else by the bytes of its codes.
    Hashing 3M byte keys had grown 4x from 1M rows, the integers' 2.5x
    (benchmarks/README.md).
    """
    n = len(lengths)
    codes = np.full(n, -1, np.int64)
    # digits from 1 (a missing page's code -1 included), so paths of every length differ
    lowest = int(page.min()) if len(page) else 0
    base = int(page.max()) - lowest + 2 if len(page) else 2
    longest = int(lengths[present].max()) if present.any() else 0
    if base**longest < 2**63:
        keys = _path_numbers(page, np.where(present, lengths, 0), lowest, base)
        codes[present] = pd.factorize(keys[present])[0]
    else:
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum(np.where(present, lengths, 0), out=offsets[1:])
        keys = pa.LargeBinaryArray.from_buffers(
            pa.large_binary(),
            n,
            [
                pa.py_buffer(np.packbits(present, bitorder="little")),
                pa.py_buffer(offsets * 4),
                pa.py_buffer(page.astype("<i4")),
            ],
        )
        codes[:] = pc.dictionary_encode(keys).indices.fill_null(-1).to_numpy(zero_copy_only=False)
    # codes come in order of first appearance: a row starts a path when its code is new
    seen = np.maximum.accumulate(np.r_[np.int64(-1), codes[:-1]]) if n else codes
    return codes, np.flatnonzero(codes > seen)


@numba.njit(cache=True)
def _path_numbers(page: np.ndarray, lengths: np.ndarray, lowest: int, base: int) -> np.ndarray:
    """Each run of ``page`` (``lengths[i]`` long, end to end) as a number in ``base``.

    Its digits are the codes less ``lowest`` plus one: never zero, so lengths never collide.
    """
    out = np.empty(len(lengths), np.int64)
    at = 0
    for i in range(len(lengths)):
        number = 0
        for j in range(at, at + lengths[i]):
            number = number * base + page[j] - lowest + 1
        out[i] = number
        at += lengths[i]
    return out


def _missing(p: object) -> bool:
    return p is None or p is pd.NA or (isinstance(p, float) and np.isnan(p))


def _path_key(p: object) -> tuple[str, ...] | None:
    if _missing(p):
        return None
    if isinstance(p, str):
        return (p,)
    return tuple(str(x) for x in cast(Iterable[object], p))
