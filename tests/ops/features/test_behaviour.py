from __future__ import annotations

import numpy as np
import pytest

from ops.features import session_stats


def test_pace_and_path_in_human_units() -> None:
    stats = session_stats(
        [np.array([2, 3, 4]), np.array([2]), np.array([1, 3])],
        [np.array([0.0, 1.0, 3.0]), np.array([0.0]), np.array([0.0, 0.6])],
        ["home", "item", "checkout"],
    )
    assert stats["path"].tolist() == ["home>item>checkout", "home", "<oov>>item"]
    assert stats["median_dwell"].tolist()[0] == 2.0 and np.isnan(stats["median_dwell"][1])
    assert stats["dwell_cv"][0] == pytest.approx(0.5) and stats["dwell_cv"][2] == 0.0
    assert stats["duration"].tolist() == pytest.approx([4.0, 0.0, 0.6])
    assert stats["n_events"].tolist() == [3, 1, 2]
