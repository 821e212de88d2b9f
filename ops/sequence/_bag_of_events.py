"""Bag-of-events baseline: what the Bi-LSTM embedding has to beat.

TF-IDF over page tokens and bigrams, reduced by truncated SVD (LSA), next to a handful of
dwell statistics. Order beyond bigrams and per-step timing are invisible to it, which is
exactly what the sequence model claims to add.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import StandardScaler

DWELL_FEATURES = (
    "log_dwell_median",
    "log_dwell_iqr",
    "log_dwell_min",
    "subsecond_share",
    "log_length",
)


class BagOfEventsEncoder(TransformerMixin, BaseEstimator):
    """LSA of page uni/bigrams ++ standardised dwell statistics, one row per session.

    Parameters
    ----------
    n_components : int
        SVD components of the TF-IDF matrix (clipped to what the vocabulary allows).
    ngram_max : int
        Longest page n-gram counted.
    dwell_weight : float
        Multiplier on the standardised dwell block, to balance it against the SVD block
        in distance-based clustering.
    random_state : int
        Seed of the randomised SVD.

    Attributes
    ----------
    vectorizer_, svd_, scaler_ : fitted sklearn steps.
    n_features_out_ : int
        Output width, ``svd_.n_components + 5``.

    Examples
    --------
    >>> import numpy as np
    >>> tokens = [np.array([2, 3, 4]), np.array([2, 5]), np.array([3, 4, 5, 6])]
    >>> dwell = [np.array([0.0, 0.6, 0.6]), np.array([0.0, 3.0]), np.array([0, 2.0, 9, 1])]
    >>> BagOfEventsEncoder(n_components=2).fit(tokens, dwell).transform(tokens, dwell).shape
    (3, 7)
    """

    def __init__(
        self,
        n_components: int = 32,
        ngram_max: int = 2,
        dwell_weight: float = 1.0,
        random_state: int = 0,
    ) -> None:
        self.n_components = n_components
        self.ngram_max = ngram_max
        self.dwell_weight = dwell_weight
        self.random_state = random_state

    def fit(self, tokens: Sequence[np.ndarray], dwell: Sequence[np.ndarray]) -> BagOfEventsEncoder:
        """Fit vocabulary, IDF, SVD and the dwell scaler."""
        docs = _documents(tokens)
        self.vectorizer_ = TfidfVectorizer(
            analyzer="word",
            token_pattern=r"\S+",
            ngram_range=(1, self.ngram_max),
            sublinear_tf=True,
            lowercase=False,
        )
        tfidf = self.vectorizer_.fit_transform(docs)
        k = max(1, min(self.n_components, tfidf.shape[1] - 1, tfidf.shape[0] - 1))
        self.svd_ = TruncatedSVD(n_components=k, random_state=self.random_state).fit(tfidf)
        self.scaler_ = StandardScaler().fit(dwell_statistics(dwell))
        self.n_features_out_ = k + len(DWELL_FEATURES)
        return self

    def transform(self, tokens: Sequence[np.ndarray], dwell: Sequence[np.ndarray]) -> np.ndarray:
        """Embed sessions: ``float32 [N, n_features_out_]``; unseen pages are ignored."""
        if len(tokens) != len(dwell):
            raise ValueError(f"{len(tokens)} token sequences but {len(dwell)} dwell sequences")
        lsa = self.svd_.transform(self.vectorizer_.transform(_documents(tokens)))
        stats = self.scaler_.transform(dwell_statistics(dwell)) * self.dwell_weight
        return np.hstack([lsa, stats]).astype(np.float32)

    def fit_transform(  # type: ignore[override]
        self, tokens: Sequence[np.ndarray], dwell: Sequence[np.ndarray]
    ) -> np.ndarray:
        """``fit(tokens, dwell).transform(tokens, dwell)``."""
        return self.fit(tokens, dwell).transform(tokens, dwell)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """``svd0..svdK-1`` then the dwell statistic names."""
        names = [f"svd{i}" for i in range(self.svd_.n_components)] + list(DWELL_FEATURES)
        return np.asarray(names, dtype=object)


def dwell_statistics(dwell: Sequence[np.ndarray]) -> np.ndarray:
    """Per session: median, IQR and min of log1p dwell, share of gaps < 1 s, log1p length.

    The first event's dwell is 0 by contract (no previous event), so it is not a gap and
    is left out; sessions with no gap get zeros.
    """
    out = np.zeros((len(dwell), len(DWELL_FEATURES)), dtype=np.float64)
    for i, d in enumerate(dwell):
        d = np.asarray(d, dtype=np.float64)
        out[i, 4] = np.log1p(d.shape[0])
        gaps = d[1:]
        if gaps.shape[0] == 0:
            continue
        log_gaps = np.log1p(np.clip(np.nan_to_num(gaps, nan=0.0), 0.0, None))
        q25, q50, q75 = np.percentile(log_gaps, [25, 50, 75])
        out[i, :4] = (q50, q75 - q25, log_gaps.min(), np.mean(gaps < 1.0))
    return out


def _documents(tokens: Sequence[np.ndarray]) -> list[str]:
    # A leading letter keeps sklearn's tokenizer from treating ids as numbers to drop.
    return [" ".join(f"p{int(t)}" for t in seq) for seq in tokens]
