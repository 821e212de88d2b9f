"""pytest plugin: hdbscan's own tests, with PHDBSCAN in place of ``hdbscan.HDBSCAN``.

Loaded before hdbscan's test modules import ``hdbscan``, it replaces ``hdbscan.HDBSCAN``,
the function ``hdbscan.hdbscan`` and ``hdbscan.prediction``'s ``approximate_predict``,
``membership_vector`` and ``all_points_membership_vectors`` by PHDBSCAN's, so those
tests exercise this code. ``run.py`` beside it runs them.
"""

from __future__ import annotations

from typing import Any

import hdbscan
import hdbscan.prediction
import numpy as np

import ops.phdbscan as ph


class HDBSCANAdapter(ph.PHDBSCAN):
    """PHDBSCAN under hdbscan's constructor: the parameters PHDBSCAN has not are kept only.

    ``mode="exact"`` by default, since hdbscan's tests compare with its exact trees.

    Parameters
    ----------
    p, memory, branch_detection_data, match_reference_implementation
        hdbscan's; kept, unused.
    **kwargs
        PHDBSCAN's parameters.
    """

    def __init__(
        self,
        min_cluster_size: int = 5,
        min_samples: int | None = None,
        cluster_selection_epsilon: float = 0.0,
        cluster_selection_persistence: float = 0.0,
        max_cluster_size: int = 0,
        metric: Any = "euclidean",
        alpha: float = 1.0,
        p: Any = None,
        algorithm: str = "best",
        leaf_size: int = 40,
        memory: Any = None,
        approx_min_span_tree: bool = True,
        gen_min_span_tree: bool = False,
        core_dist_n_jobs: int = 4,
        cluster_selection_method: str = "eom",
        allow_single_cluster: bool = False,
        prediction_data: bool = False,
        branch_detection_data: bool = False,
        match_reference_implementation: bool = False,
        cluster_selection_epsilon_max: float = float("inf"),
        mode: str = "exact",
    ) -> None:
        super().__init__(
            min_cluster_size=min_cluster_size,
            min_samples=min_samples,
            cluster_selection_epsilon=cluster_selection_epsilon,
            cluster_selection_persistence=cluster_selection_persistence,
            max_cluster_size=max_cluster_size,
            metric=metric,
            alpha=alpha,
            algorithm=algorithm,
            leaf_size=leaf_size,
            approx_min_span_tree=approx_min_span_tree,
            gen_min_span_tree=gen_min_span_tree,
            core_dist_n_jobs=core_dist_n_jobs,
            cluster_selection_method=cluster_selection_method,
            allow_single_cluster=allow_single_cluster,
            prediction_data=prediction_data,
            cluster_selection_epsilon_max=cluster_selection_epsilon_max,
            mode=mode,  # type: ignore[arg-type]
        )
        self.p = p
        self.memory = memory
        self.branch_detection_data = branch_detection_data
        self.match_reference_implementation = match_reference_implementation


def hdbscan_function(X: Any, metric: Any = "minkowski", p: Any = 2, **params: Any) -> tuple:
    """``hdbscan.hdbscan``'s return tuple, from PHDBSCAN (minkowski p=2 is euclidean).

    Parameters
    ----------
    X : array-like
    metric, p
        hdbscan's metric arguments.
    **params
        :class:`HDBSCANAdapter` parameters.

    Returns
    -------
    tuple
        labels, probabilities, persistence, condensed tree, single linkage tree, MST.
    """
    if metric == "minkowski" and p is None:
        raise TypeError("minkowski needs p")  # hdbscan's error for this call
    if metric == "minkowski" and p == 2:
        metric = "euclidean"
    model = HDBSCANAdapter(metric=metric, **params).fit(X)
    return (
        model.labels_,
        model.probabilities_,
        model.cluster_persistence_,
        model._condensed_tree,
        model.single_linkage_tree_.to_numpy(),
        model.minimum_spanning_tree_.to_numpy(),
    )


def _install() -> None:
    hdbscan.HDBSCAN = HDBSCANAdapter
    hdbscan.hdbscan = hdbscan_function
    for name in ("approximate_predict", "membership_vector", "all_points_membership_vectors"):
        setattr(hdbscan, name, getattr(ph, name))
        setattr(hdbscan.prediction, name, getattr(ph, name))
    np.seterr(all="ignore")  # hdbscan's tests run with numpy's defaults, as in its own CI


_install()
