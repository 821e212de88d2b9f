"""pHDBSCAN: HDBSCAN* on FAISS kNN graphs, a drop-in for ``hdbscan.HDBSCAN``.

``PHDBSCAN`` takes hdbscan's parameters and gives its fitted attributes; the functions here
are ``hdbscan.prediction``'s. The modules behind them are private: ``_estimator`` the
estimator, ``_spanning_tree``, ``_mst`` and ``_knn*`` the spanning tree,
``_prims_order``, ``_condense`` and ``_condensed_tree`` the hierarchy, ``_soft`` soft
clustering. How they fit together: ``docs/phdbscan.md``.
"""

from ops.phdbscan._estimator import PHDBSCAN, phdbscan
from ops.phdbscan._prediction import (
    all_points_membership_vectors,
    approximate_predict,
    membership_vector,
    training_neighbours,
)

__all__ = [
    "PHDBSCAN",
    "all_points_membership_vectors",
    "approximate_predict",
    "membership_vector",
    "phdbscan",
    "training_neighbours",
]
