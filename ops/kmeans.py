"""k-means on FAISS behind a scikit-learn estimator.

scikit-learn's ``KMeans`` is exact Lloyd with k-means++ seeding and becomes the bottleneck
well before a million rows; ``faiss.Kmeans`` subsamples for training (64-256 points per
centroid) and assigns with BLAS or a GPU, which is what coarse partitioning of embeddings
(e.g. the shard step of pHDBSCAN, arXiv 2101.04285) needs.

Examples
--------
>>> import numpy as np
>>> X = np.r_[np.zeros((50, 2)), np.ones((50, 2)) * 10].astype(np.float32)
>>> km = FaissKMeans(n_clusters=2, seed=0).fit(X)
>>> sorted(np.bincount(km.labels_).tolist())
[50, 50]
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin

__all__ = ["FaissKMeans"]


class FaissKMeans(ClusterMixin, BaseEstimator):
    """Lloyd k-means via ``faiss.Kmeans``.

    Parameters
    ----------
    n_clusters : int
    n_iter : int, default=20
        Lloyd iterations; FAISS's default, converged on our embeddings within 1e-3 inertia.
    seed : int, default=0
    device : {"auto", "cpu", "cuda"}, default="auto"
        ``"auto"`` uses a FAISS GPU when ``faiss.get_num_gpus() > 0``.
    n_redo : int, default=1
        Restarts; the best inertia is kept.
    max_points_per_centroid : int, default=256
        Training subsample cap (FAISS default).

    Attributes
    ----------
    cluster_centers_ : ndarray (n_clusters, d) float32
    labels_ : ndarray (n,) int64
    inertia_ : float
        Sum of squared distances of the training rows to their centres.
    """

    def __init__(
        self,
        n_clusters: int = 8,
        n_iter: int = 20,
        seed: int = 0,
        device: str = "auto",
        n_redo: int = 1,
        max_points_per_centroid: int = 256,
    ) -> None:
        self.n_clusters = n_clusters
        self.n_iter = n_iter
        self.seed = seed
        self.device = device
        self.n_redo = n_redo
        self.max_points_per_centroid = max_points_per_centroid

    @staticmethod
    def _as_f32(X: Any) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2:
            raise ValueError(f"expected a 2-d array, got shape {X.shape}")
        if not np.isfinite(X).all():
            bad = np.flatnonzero(~np.isfinite(X).all(1))[:5].tolist()
            raise ValueError(f"input contains NaN or infinity in row(s) {bad}")
        return X

    def _use_gpu(self) -> bool:
        import faiss

        if self.device == "cpu":
            return False
        gpus = int(getattr(faiss, "get_num_gpus", lambda: 0)())
        if self.device == "cuda" and gpus == 0:
            raise RuntimeError("device='cuda' but this faiss build sees no GPU")
        return gpus > 0

    def fit(self, X: Any, y: Any = None) -> FaissKMeans:
        """Train centres on ``X``; ``y`` is ignored."""
        import faiss

        X = self._as_f32(X)
        n, d = X.shape
        if not 1 <= self.n_clusters <= n:
            raise ValueError(f"n_clusters={self.n_clusters} must be in [1, n_samples={n}]")
        km = faiss.Kmeans(
            d,
            int(self.n_clusters),
            niter=int(self.n_iter),
            seed=int(self.seed),
            nredo=int(self.n_redo),
            gpu=self._use_gpu(),
            max_points_per_centroid=int(self.max_points_per_centroid),
            verbose=False,
        )
        km.train(X)
        self.cluster_centers_ = np.asarray(km.centroids, dtype=np.float32).copy()
        self._index = None
        dist, labels = self._search(X)
        self.labels_ = labels
        self.inertia_ = float(dist.astype(np.float64).sum())
        self.n_features_in_ = d
        return self

    def _search(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        if self._index is None:
            self._index = faiss.IndexFlatL2(self.cluster_centers_.shape[1])
            self._index.add(self.cluster_centers_)
        dist, labels = self._index.search(X, 1)
        return dist[:, 0], labels[:, 0].astype(np.int64)

    def predict(self, X: Any) -> np.ndarray:
        """Index of the nearest centre for each row."""
        if not hasattr(self, "cluster_centers_"):
            raise RuntimeError("FaissKMeans.predict called before fit")
        X = self._as_f32(X)
        if X.shape[1] != self.cluster_centers_.shape[1]:
            raise ValueError("feature dimension does not match the fitted centres")
        return self._search(X)[1]

    def fit_predict(self, X: Any, y: Any = None, **kwargs: Any) -> np.ndarray:
        """Fit and return ``labels_``."""
        return self.fit(X).labels_

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_index"] = None  # rebuilt lazily from cluster_centers_
        return state
