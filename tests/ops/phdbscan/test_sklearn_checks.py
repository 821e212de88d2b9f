"""scikit-learn's estimator checks: PHDBSCAN as a scikit-learn clusterer.

Among them: ``n_features_in_``, empty, complex and sparse input rejected with scikit-learn's
errors, NaN and infinity rejected, pickling, cloning and ``fit`` idempotence.
"""

from __future__ import annotations

from collections.abc import Callable

from sklearn.utils.estimator_checks import parametrize_with_checks

from ops.phdbscan import PHDBSCAN


@parametrize_with_checks([PHDBSCAN()])
def test_scikit_learn_estimator_checks(estimator: PHDBSCAN, check: Callable) -> None:
    check(estimator)
