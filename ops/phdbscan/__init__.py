"""pHDBSCAN: HDBSCAN* on FAISS kNN graphs, a drop-in for ``hdbscan.HDBSCAN``.

The public names live here; the modules behind them are private (``_estimator`` the
estimator, ``_mst`` the spanning tree, ``_condensed_tree`` the hierarchy, ``_knn*`` the
neighbour search). How they fit together: ``docs/phdbscan.md``.
"""

from ops.phdbscan._estimator import PHDBSCAN, phdbscan

__all__ = ["PHDBSCAN", "phdbscan"]
