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


def flat_steps(
    tokens: Sequence[np.ndarray], dwell: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All sessions' steps end to end: ``(session row, token, dwell, has_gap)``.

    ``has_gap`` is False at each session's first event, whose dwell measures nothing.
    """
    if isinstance(tokens, Ragged) and isinstance(dwell, Ragged):  # already end to end
        lengths = tokens.lengths
        flat_tokens, flat_dwell = tokens.values.astype(np.int64), dwell.values
    else:
        lengths = np.fromiter((len(t) for t in tokens), dtype=np.int64, count=len(tokens))
        flat_tokens = np.concatenate(tokens).astype(np.int64) if len(tokens) else np.zeros(0, int)
        flat_dwell = np.concatenate(dwell) if len(dwell) else np.zeros(0)
    row = np.repeat(np.arange(len(tokens)), lengths)
    has_gap = np.ones(len(flat_tokens), dtype=bool)
    has_gap[np.r_[0, np.cumsum(lengths)[:-1]][lengths > 0]] = False
    return row, flat_tokens, flat_dwell, has_gap


def _steps(
    tokens: Sequence[np.ndarray], dwell: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(session row, page token, log dwell) of every step that has a dwell.

    ``dwell[i]`` is the time since the previous event, so it was spent on page
    ``tokens[i - 1]``; a session's first event has none.
    """
    row, flat_tokens, flat_dwell, has_gap = flat_steps(tokens, dwell)
    page = np.r_[0, flat_tokens[:-1]] if len(flat_tokens) else flat_tokens
    log_dwell = np.log(np.maximum(flat_dwell[has_gap].astype(np.float64), MIN_DWELL_S))
    return row[has_gap], page[has_gap], log_dwell


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
    _, page, log_dwell = _steps(tokens, dwell)
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
    row, page, x = _steps(tokens, dwell)
    lookup = np.full(FIRST_TOKEN + len(vocabulary), table.default)
    lookup[FIRST_TOKEN:] = [table.typical.get(name, table.default) for name in vocabulary]
    t = lookup[page]
    n = len(tokens)

    # Per-session sums by bincount: pandas' groupby took ~3x as long at scoring sizes.
    steps = np.bincount(row, minlength=n)
    seen = np.maximum(steps, 1)  # sessions without a step: sums of 0, means of 0

    def total(v: np.ndarray) -> np.ndarray:
        return np.bincount(row, weights=v, minlength=n)

    def centred(v: np.ndarray) -> np.ndarray:
        return v - (total(v) / seen)[row]

    xc, tc = centred(x), centred(t)
    return pd.DataFrame(
        {
            "dwell_page_fit": total(xc * tc),
            "dwell_off_page": np.exp(total(np.abs(xc - tc)) / seen),
        }
    )


def fit_block(fit: pd.DataFrame) -> np.ndarray:
    """`dwell_fit` as a hybrid-vector block, ``float64 [n, 2]``.

    Compressed so a few long sessions do not stretch the scale: signed log of
    ``dwell_page_fit`` (a sum over steps) and log of ``dwell_off_page`` (a factor).
    """
    page_fit = fit["dwell_page_fit"].to_numpy(dtype=np.float64)
    off_page = fit["dwell_off_page"].to_numpy(dtype=np.float64)
    return np.column_stack([np.sign(page_fit) * np.log1p(np.abs(page_fit)), np.log(off_page)])
