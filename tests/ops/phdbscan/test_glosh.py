"""GLOSH in numba gives hdbscan's compiled scores to the bit."""

from __future__ import annotations

import numpy as np
import pytest
from hdbscan._hdbscan_tree import outlier_scores

from ops.phdbscan._glosh import glosh_scores
from tests.ops.phdbscan.references import blob_tree


@pytest.mark.parametrize("duplicates", [False, True])
def test_glosh_scores_are_hdbscans(duplicates: bool) -> None:
    tree = blob_tree(duplicates, seed=1)
    ours = glosh_scores(tree)
    # NaN too where hdbscan gives NaN: a finite lambda in a cluster whose deepest is infinite
    assert np.array_equal(ours, np.asarray(outlier_scores(tree)), equal_nan=True)
    scored = ours[np.isfinite(ours)]
    assert len(ours) == 3_000 and (scored > 0).any() and ((scored >= 0) & (scored <= 1)).all()
    assert glosh_scores(tree[:0]).shape == (0,)
