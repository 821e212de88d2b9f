"""Per-transaction features: tabular columns, page dwell, session statistics, hybrid vectors.

The feature spec fitted on transactions, each page's typical dwell, the session
statistics investigators read, and the hybrid vector that joins features with the
session embedding for clustering.
"""

from ops.features._behaviour import path_codes, path_keys, session_stats
from ops.features._features import (
    EncodedFeatures,
    FeatureSpec,
    fit_features,
    fit_transform_features,
    transform_features,
)
from ops.features._hybrid import HybridScaling, apply_hybrid, fit_hybrid, hybrid_vectors
from ops.features._page_dwell import (
    DWELL_FIT_COLUMNS,
    MIN_DWELL_S,
    PageDwell,
    dwell_fit,
    fit_block,
    fit_page_dwell,
)
from ops.features._ragged import Ragged

__all__ = [
    "DWELL_FIT_COLUMNS",
    "MIN_DWELL_S",
    "EncodedFeatures",
    "FeatureSpec",
    "HybridScaling",
    "PageDwell",
    "Ragged",
    "apply_hybrid",
    "dwell_fit",
    "fit_block",
    "fit_features",
    "fit_hybrid",
    "fit_page_dwell",
    "fit_transform_features",
    "hybrid_vectors",
    "path_codes",
    "path_keys",
    "session_stats",
    "transform_features",
]
