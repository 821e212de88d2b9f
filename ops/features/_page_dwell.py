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
    """All sessions end to end: ``(events per session, token, dwell)``."""
    if isinstance(tokens, Ragged) and isinstance(dwell, Ragged):  # already end to end
        # no copy: tokens are read as int64 already (400 MB at 3M sessions)
        return tokens.lengths, tokens.values.astype(np.int64, copy=False), dwell.values
    lengths = np.fromiter((len(t) for t in tokens), dtype=np.int64, count=len(tokens))
    flat_tokens = np.concatenate(tokens).astype(np.int64) if len(tokens) else np.zeros(0, int)
    flat_dwell = np.concatenate(dwell) if len(dwell) else np.zeros(0)
    return lengths, flat_tokens, flat_dwell


def flat_steps(
    tokens: Sequence[np.ndarray], dwell: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All sessions' steps end to end: ``(session row, token, dwell, has_gap)``.

    ``has_gap`` is False at each session's first event, whose dwell measures nothing.
    """
    lengths, flat_tokens, flat_dwell = flat_sessions(tokens, dwell)
    row = np.repeat(np.arange(len(lengths)), lengths)
    return row, flat_tokens, flat_dwell, _has_gap(lengths, len(flat_tokens))


def _has_gap(lengths: np.ndarray, n_steps: int) -> np.ndarray:
    """False at each session's first event, True at every later one."""
    has_gap = np.ones(n_steps, dtype=bool)
    has_gap[np.r_[0, np.cumsum(lengths)[:-1]][lengths > 0]] = False
    return has_gap


def _log_dwell(dwell: np.ndarray) -> np.ndarray:
    """Log seconds, float64, with `MIN_DWELL_S` as the floor."""
    return np.log(np.maximum(dwell.astype(np.float64), MIN_DWELL_S))


def _steps(
    tokens: Sequence[np.ndarray], dwell: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """(page token, log dwell) of every step that has a dwell.

    ``dwell[i]`` is the time since the previous event, so it was spent on page
    ``tokens[i - 1]``; a session's first event has none, and the first step of all is one.
    """
    lengths, flat_tokens, flat_dwell = flat_sessions(tokens, dwell)
    has_gap = _has_gap(lengths, len(flat_tokens))
    return flat_tokens[:-1][has_gap[1:]], _log_dwell(flat_dwell[has_gap])


@numba.njit(cache=True)
def _group(keys: np.ndarray, values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """``values`` gathered by key (a counting sort's scatter; ``starts`` from the key counts)."""
    out = np.empty_like(values)
    fill = starts[:-1].copy()
    for i in range(len(keys)):
        out[fill[keys[i]]] = values[i]
        fill[keys[i]] += 1
    return out


def _medians(keys: np.ndarray, values: np.ndarray) -> list[tuple[int, float]]:
    """``(key, median of its values)`` per key present, by key: a pandas groupby median's.

    Keys are page tokens (a vocabulary: tens to thousands), so one counting-sort pass and a
    partition per page replace pandas' sort of every step (2.7 s for 17M steps).
    """
    if not len(keys):
        return []
    counts = np.bincount(keys)
    starts = np.r_[0, np.cumsum(counts)]
    grouped = _group(keys, values, starts)
    present = np.flatnonzero(counts)
    return [(int(k), float(np.median(grouped[starts[k] : starts[k + 1]]))) for k in present]


def fit_page_dwell(
    tokens: Sequence[np.ndarray], dwell: Sequence[np.ndarray], vocabulary: Sequence[str]
) -> PageDwell:
    """Each known page's median log dwell over the window (the yardstick scoring reuses)."""
    page, log_dwell = _steps(tokens, dwell)
    known = page >= FIRST_TOKEN
    return PageDwell(
        typical={
            vocabulary[int(t) - FIRST_TOKEN]: v for t, v in _medians(page[known], log_dwell[known])
        },
        default=float(np.median(log_dwell)) if len(log_dwell) else 0.0,
    )


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
    log_dwell = _log_dwell(flat_dwell[_has_gap(lengths, len(flat_dwell))])
    lookup = np.full(FIRST_TOKEN + len(vocabulary), table.default)
    lookup[FIRST_TOKEN:] = [table.typical.get(name, table.default) for name in vocabulary]
    page_fit, off_page = _fit_sums(flat_tokens, log_dwell, lengths, lookup)
    return pd.DataFrame({"dwell_page_fit": page_fit, "dwell_off_page": np.exp(off_page)})


@numba.njit(cache=True)
def _fit_sums(
    tokens: np.ndarray, log_dwell: np.ndarray, lengths: np.ndarray, lookup: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per session: the sum of centred products, and the mean absolute centred difference.

    One pass per session over its steps, summed in step order (as ``np.bincount`` sums); a
    whole-column form held six arrays of every step (1 GB at 1M sessions).
    """
    n = len(lengths)
    page_fit, off_page = np.zeros(n), np.zeros(n)
    first = 0  # the session's first event among the tokens
    step = 0  # its first dwell step among log_dwell
    for s in range(n):
        steps = max(lengths[s] - 1, 0)
        seen = max(steps, 1)  # sessions without a step: sums of 0, means of 0
        sum_x = sum_t = 0.0
        for i in range(steps):
            sum_x += log_dwell[step + i]
            sum_t += lookup[tokens[first + i]]  # the page the wait was spent on
        mean_x, mean_t = sum_x / seen, sum_t / seen
        fit = off = 0.0
        for i in range(steps):
            xc = log_dwell[step + i] - mean_x
            tc = lookup[tokens[first + i]] - mean_t
            fit += xc * tc
            off += abs(xc - tc)
        page_fit[s], off_page[s] = fit, off / seen
        first += lengths[s]
        step += steps
    return page_fit, off_page


def fit_block(fit: pd.DataFrame) -> np.ndarray:
    """`dwell_fit` as a hybrid-vector block, ``float64 [n, 2]``.

    Compressed so a few long sessions do not stretch the scale: signed log of
    ``dwell_page_fit`` (a sum over steps) and log of ``dwell_off_page`` (a factor).
    """
    page_fit = fit["dwell_page_fit"].to_numpy(dtype=np.float64)
    off_page = fit["dwell_off_page"].to_numpy(dtype=np.float64)
    return np.column_stack([np.sign(page_fit) * np.log1p(np.abs(page_fit)), np.log(off_page)])
