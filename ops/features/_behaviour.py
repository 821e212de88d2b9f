"""Per-transaction session statistics that investigators read: path, pace, duration.

Risk scoring and narratives need "how fast" and "which way" in human units (seconds, page
names), which the learned embedding cannot give; these come straight from the sequences.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

import numpy as np
import pandas as pd

from ops.features._page_dwell import PageDwell, dwell_fit, flat_steps


def session_stats(
    tokens: Sequence[np.ndarray],
    dwell: Sequence[np.ndarray],
    vocabulary: Sequence[str],
    path_length: int = 8,
    page_dwell: PageDwell | None = None,
) -> pd.DataFrame:
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
    DataFrame
        ``median_dwell``, ``dwell_cv`` (gaps after the first event), ``duration`` (s),
        ``n_events`` and ``path`` (the list of the first ``path_length`` page names).
    """
    row, _, flat, is_gap = flat_steps(tokens, dwell)
    gaps = pd.Series(flat[is_gap]).groupby(row[is_gap])
    names = np.array(["<pad>", "<oov>", *vocabulary], dtype=object)
    paths = [names[t[:path_length]].tolist() for t in tokens]
    median = gaps.median().reindex(range(len(tokens)))
    mean, std = (
        gaps.mean().reindex(range(len(tokens))),
        gaps.std(ddof=0).reindex(range(len(tokens))),
    )
    stats = pd.DataFrame(
        {
            "median_dwell": median.to_numpy(),
            "dwell_cv": (std / mean.where(mean > 0)).to_numpy(),
            "duration": pd.Series(flat).groupby(row).sum().reindex(range(len(tokens))).to_numpy(),
            "n_events": np.bincount(row, minlength=len(tokens)),
            "path": paths,
        }
    )
    if page_dwell is None:
        return stats
    return pd.concat([stats, dwell_fit(page_dwell, tokens, dwell, vocabulary)], axis=1)


def path_keys(paths: pd.Series) -> list[tuple[str, ...] | None]:
    """Paths as hashable tuples of page names (``None`` where missing), for counting.

    A path is a list of names: Shoal's own ``behaviour`` table stores lists, and Parquet
    hands them back as arrays. A plain string is taken as a single page, never split, so a
    name holding ``>``, ``|`` or commas stays one page.
    """
    return [_path_key(p) for p in paths]


def _path_key(p: object) -> tuple[str, ...] | None:
    if p is None or (isinstance(p, float) and np.isnan(p)):
        return None
    if isinstance(p, str):
        return (p,)
    return tuple(str(x) for x in cast(Iterable[object], p))
