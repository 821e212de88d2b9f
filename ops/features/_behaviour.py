"""Per-transaction session statistics that investigators read: path, pace, duration.

Risk scoring and narratives need "how fast" and "which way" in human units (seconds, page
names), which the learned embedding cannot give; these come straight from the sequences.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ops.features._page_dwell import PageDwell, dwell_fit, flat_steps

PATH_SEPARATOR = ">"


def session_stats(
    tokens: Sequence[np.ndarray],
    dwell: Sequence[np.ndarray],
    vocabulary: Sequence[str],
    path_length: int = 8,
    page_dwell: PageDwell | None = None,
) -> pd.DataFrame:
    """Measure each session's pace and path.

    ``median_dwell``, ``dwell_cv`` (gaps after the first event), ``duration`` (s),
    ``n_events`` and ``path`` (the first ``path_length`` page names joined by ``>``); with
    the window's fitted ``page_dwell``, also how the dwell fits the pages (`dwell_fit`).
    """
    row, _, flat, is_gap = flat_steps(tokens, dwell)
    gaps = pd.Series(flat[is_gap]).groupby(row[is_gap])
    names = np.array(["<pad>", "<oov>", *vocabulary], dtype=object)
    paths = [PATH_SEPARATOR.join(names[t[:path_length]]) for t in tokens]
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
