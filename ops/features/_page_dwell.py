"""Whether a session's dwell times fit its pages: what a bot sleeping human delays gets wrong.

People linger on slow pages (reviews, forms) and skim quick ones. A bot that sleeps a recorded
human delay whatever the page keeps a person's delays, pace and path, and loses only that
pairing, which no per-session distribution of dwell (median, spread) can show. Each page's
typical dwell is fitted on the training window and kept (`PageDwell`), so sessions scored
later are measured against the same yardstick, never a refitted one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numba
import numpy as np
import pandas as pd

from ops.features._ragged import Ragged
from ops.ingest import FIRST_TOKEN

#: Per-session columns of `dwell_fit`, in the order of `fit_block`.
DWELL_FIT_COLUMNS = ["dwell_page_fit", "dwell_off_page"]
#: Dwell below this (s) is measured as this: a log needs it, and no one reads a page faster.
MIN_DWELL_S = 0.1
#: Sessions per block of `dwell_fit`: their steps' logs (a few MB) stay in cache.
_FIT_SESSIONS = 1 << 14


@dataclass(frozen=True)
class PageDwell:
    """Median log dwell (s) spent on each page in the training window, and over all pages."""

    typical: dict[str, float]
    default: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PageDwell:
        typical = {str(k): float(v) for k, v in data["typical"].items()}
        return cls(typical=typical, default=float(data["default"]))


def flat_sessions(
    tokens: Sequence[np.ndarray], dwell: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All sessions end to end: ``(events per session, token, dwell)``.

    Rows already end to end (:class:`Ragged`) are returned as they are, their token ids in
    their own integer type: no copy (int64 ids would be 400 MB at 3M sessions).
    """
    if isinstance(tokens, Ragged) and isinstance(dwell, Ragged):
        return tokens.lengths, tokens.values, dwell.values
    lengths = np.fromiter((len(t) for t in tokens), dtype=np.int64, count=len(tokens))
    flat_tokens = np.concatenate(tokens).astype(np.int64) if len(tokens) else np.zeros(0, int)
    flat_dwell = np.concatenate(dwell) if len(dwell) else np.zeros(0)
    return lengths, flat_tokens, flat_dwell


def _log_dwell(dwell: np.ndarray) -> np.ndarray:
    """Log seconds, float64, with `MIN_DWELL_S` as the floor."""
    return np.log(np.maximum(dwell.astype(np.float64), MIN_DWELL_S))


@numba.njit(cache=True)
def _dwell_by_page(
    tokens: np.ndarray, dwell: np.ndarray, lengths: np.ndarray, pages: int
) -> tuple[np.ndarray, np.ndarray]:
    """Every gap's dwell, gathered by the page it was spent on (a counting sort).

    ``dwell[i]`` is the time since the previous event, so it was spent on page
    ``tokens[i - 1]``; a session's first event has none. Page ``p``'s dwell is
    ``grouped[starts[p]:starts[p + 1]]``, in step order. Two passes over the steps, with no
    array of every step's page or gap mask beside them (2 GB at 3M sessions' 51M steps).
    """
    starts = np.zeros(pages + 1, np.int64)
    first = 0
    for s in range(len(lengths)):
        for i in range(first + 1, first + lengths[s]):
            starts[tokens[i - 1] + 1] += 1
        first += lengths[s]
    starts = np.cumsum(starts)
    grouped = np.empty(starts[-1], dwell.dtype)
    fill = starts[:-1].copy()
    first = 0
    for s in range(len(lengths)):
        for i in range(first + 1, first + lengths[s]):
            grouped[fill[tokens[i - 1]]] = dwell[i]
            fill[tokens[i - 1]] += 1
        first += lengths[s]
    return grouped, starts


def _median_log_dwell(dwell: np.ndarray) -> float:
    """``np.median(_log_dwell(dwell))``, taking the log of the middle values only.

    The log and the floor keep the order, so the middle of the logs is the log of the
    middle. ``dwell`` is partitioned in place.
    """
    if np.isnan(dwell).any():
        return float("nan")
    middle = [(len(dwell) - 1) // 2, len(dwell) // 2]
    dwell.partition(middle)
    return float(np.mean(_log_dwell(dwell[middle])))


def fit_page_dwell(
    tokens: Sequence[np.ndarray], dwell: Sequence[np.ndarray], vocabulary: Sequence[str]
) -> PageDwell:
    """Each known page's median log dwell over the window (the yardstick scoring reuses)."""
    lengths, flat_tokens, flat_dwell = flat_sessions(tokens, dwell)
    if len(flat_tokens) and flat_tokens.min() < 0:  # the scatter indexes by token
        raise ValueError(f"page tokens must be at least 0, got {flat_tokens.min()}")
    pages = int(flat_tokens.max()) + 1 if len(flat_tokens) else 0
    grouped, starts = _dwell_by_page(flat_tokens, flat_dwell, lengths, pages)
    if not len(grouped):  # no session has a gap
        return PageDwell(typical={}, default=0.0)
    typical = {
        vocabulary[t - FIRST_TOKEN]: _median_log_dwell(grouped[starts[t] : starts[t + 1]])
        for t in range(FIRST_TOKEN, pages)
        if starts[t + 1] > starts[t]
    }
    # last: partitioning the whole array reorders the pages' slices
    return PageDwell(typical=typical, default=_median_log_dwell(grouped))


def dwell_fit(
    table: PageDwell,
    tokens: Sequence[np.ndarray],
    dwell: Sequence[np.ndarray],
    vocabulary: Sequence[str],
) -> pd.DataFrame:
    """Per session, two measures against the fitted ``table`` (``vocabulary`` names the ids).

    The measures:

    * ``dwell_page_fit``: sum over steps of (log dwell - the session's mean) x (the page's
      typical log dwell - the session's mean of those). Positive when the session lingers
      where people linger; around 0 or below when its long waits fall on quick pages. A sum,
      so a long session gives more evidence than a short one.
    * ``dwell_off_page``: by what factor a step's dwell is typically off its page's usual
      one (geometric mean), once the session's own pace is taken out; 1 = exactly usual.

    Sessions with fewer than two dwell steps have no evidence either way: 0 and 1.
    """
    lengths, flat_tokens, flat_dwell = flat_sessions(tokens, dwell)
    lookup = np.full(FIRST_TOKEN + len(vocabulary), table.default)
    lookup[FIRST_TOKEN:] = [table.typical.get(name, table.default) for name in vocabulary]
    offsets = np.r_[0, np.cumsum(lengths)]
    page_fit, off_page = np.zeros(len(lengths)), np.zeros(len(lengths))
    # by blocks of sessions: their steps' logs stay in cache, where every step's took 400 MB
    # at 3M sessions, and as long to fault in as to compute
    for a in range(0, len(lengths), _FIT_SESSIONS):
        b = min(a + _FIT_SESSIONS, len(lengths))
        steps = slice(offsets[a], offsets[b])
        logs = _log_dwell(flat_dwell[steps])
        _fit_sums(flat_tokens[steps], logs, lengths[a:b], lookup, page_fit[a:b], off_page[a:b])
    return pd.DataFrame({"dwell_page_fit": page_fit, "dwell_off_page": np.exp(off_page)})


@numba.njit(cache=True)
def _fit_sums(
    tokens: np.ndarray,
    log_dwell: np.ndarray,
    lengths: np.ndarray,
    lookup: np.ndarray,
    page_fit: np.ndarray,
    off_page: np.ndarray,
) -> None:
    """Per session: the sum of centred products, and the mean absolute centred difference.

    Written into ``page_fit`` and ``off_page``. ``log_dwell`` holds every step's, each
    session's first too, which is not read. One pass per session over its steps, summed in
    step order (as ``np.bincount`` sums); a whole-column form held six arrays of every step
    (1 GB at 1M sessions).
    """
    first = 0  # the session's first event
    for s in range(len(lengths)):
        steps = max(lengths[s] - 1, 0)
        seen = max(steps, 1)  # sessions without a step: sums of 0, means of 0
        sum_x = sum_t = 0.0
        for i in range(steps):
            sum_x += log_dwell[first + 1 + i]
            sum_t += lookup[tokens[first + i]]  # the page the wait was spent on
        mean_x, mean_t = sum_x / seen, sum_t / seen
        fit = off = 0.0
        for i in range(steps):
            xc = log_dwell[first + 1 + i] - mean_x
            tc = lookup[tokens[first + i]] - mean_t
            fit += xc * tc
            off += abs(xc - tc)
        page_fit[s], off_page[s] = fit, off / seen
        first += lengths[s]


def fit_block(fit: pd.DataFrame) -> np.ndarray:
    """`dwell_fit` as a hybrid-vector block, ``float64 [n, 2]``.

    Compressed so a few long sessions do not stretch the scale: signed log of
    ``dwell_page_fit`` (a sum over steps) and log of ``dwell_off_page`` (a factor).
    """
    page_fit = fit["dwell_page_fit"].to_numpy(dtype=np.float64)
    off_page = fit["dwell_off_page"].to_numpy(dtype=np.float64)
    return np.column_stack([np.sign(page_fit) * np.log1p(np.abs(page_fit)), np.log(off_page)])
