"""k-nearest-neighbour search behind one interface: FAISS (CPU/GPU) or PyTorch.

HDBSCAN* spends most of its time in neighbour queries, so this module hides the
engine choice behind :class:`KNNIndex` and :func:`knn_search`:

* ``"flat"``      -- FAISS ``IndexFlatL2``, exact; the reference everything is checked against.
* ``"ivf"``       -- FAISS ``IndexIVFFlat``; sub-linear per query, recall set by ``nprobe``.
* ``"hnsw"``      -- FAISS ``IndexHNSWFlat``; best recall/latency for many repeated queries
  but a slow build, so IVF is preferred for one-shot all-points kNN graphs.
* ``"faiss_gpu"`` -- FAISS ``GpuIndexFlatL2`` when ``faiss.get_num_gpus() > 0``.
* ``"torch"``     -- chunked ``matmul`` + ``topk`` in PyTorch. Exists because GPU machines
  often ship CUDA PyTorch without a faiss-gpu build; it also runs on CPU so it can be tested.

FAISS L2 indexes return *squared* distances; every backend here returns true Euclidean
distances (float32) so callers never have to remember which engine answered.

Examples
--------
>>> import numpy as np
>>> X = np.random.default_rng(0).normal(size=(100, 4)).astype(np.float32)
>>> dist, idx = knn_search(X, k=3)
>>> bool((idx[:, 0] == np.arange(100)).all())
True
"""

from __future__ import annotations

import math
import os
import sys
from typing import Any, Literal

import numpy as np

Backend = Literal["auto", "flat", "ivf", "hnsw", "faiss_gpu", "torch"]

__all__ = ["KNNIndex", "knn_search", "resolve_backend"]


def _faiss() -> Any:
    import faiss  # imported lazily: the torch backend must work where faiss is absent

    return faiss


def _faiss_num_gpus() -> int:
    try:
        return int(_faiss().get_num_gpus())
    except (ImportError, AttributeError):
        return 0


def _torch_cuda() -> bool:
    """Whether PyTorch sees a CUDA device; without an NVIDIA device node, torch is not imported.

    Importing torch only to learn there is no GPU costs seconds of a CPU fit (more than the
    whole fit at 10k rows; benchmarks/README.md); a machine with NVIDIA's driver always has
    ``/dev/nvidiactl``.
    """
    if "torch" not in sys.modules and not os.path.exists("/dev/nvidiactl"):
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def resolve_backend(backend: Backend = "auto", exact: bool = True) -> str:
    """Pick a concrete backend.

    ``"auto"`` prefers a GPU (FAISS, then PyTorch) because brute force on a GPU beats any
    CPU index at the sizes we cluster; on CPU it returns ``"flat"`` when ``exact`` and
    ``"ivf"`` otherwise, since IVF reached 0.9996 recall at a quarter of flat's time in our
    100k x 32 measurements while HNSW's build dominated a one-shot kNN graph.
    """
    if backend != "auto":
        return backend
    if _faiss_num_gpus() > 0:
        return "faiss_gpu"
    if _torch_cuda():
        return "torch"
    return "flat" if exact else "ivf"


def _as_f32(X: Any) -> np.ndarray:
    X = np.ascontiguousarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"expected a 2-d array, got shape {X.shape}")
    return X


class KNNIndex:
    """A Euclidean kNN index over one engine.

    Parameters
    ----------
    backend : {"auto", "flat", "ivf", "hnsw", "faiss_gpu", "torch"}
        Engine; see the module docstring. ``"auto"`` resolves with :func:`resolve_backend`.
    exact : bool
        Only used by ``backend="auto"`` on CPU: exact flat search or IVF.
    nlist : int, optional
        IVF cells. Default ``4 * sqrt(n)`` clipped to [1, n / 39] -- FAISS warns below
        39 training points per centroid and recall drops with fewer.
    nprobe : int, optional
        IVF cells visited per query. Default ``max(16, nlist // 16)``: at 100k x 32 on
        blobs, 16 of 256 cells gave 0.9996 recall of the exact 50-NN.
    hnsw_m, ef_construction, ef_search : int
        HNSW graph degree and beam widths.
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda[:i]"``; only the ``"torch"`` backend honours it.
    query_batch : int
        Queries per block for the torch backend (memory is ``query_batch x db_batch``).
    db_batch : int
        Database rows per block for the torch backend.
    random_state : int
        Seed for IVF training sampling.
    """

    def __init__(
        self,
        backend: Backend = "auto",
        *,
        exact: bool = True,
        nlist: int | None = None,
        nprobe: int | None = None,
        hnsw_m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 128,
        device: str = "auto",
        query_batch: int = 4096,
        db_batch: int = 65536,
        random_state: int = 0,
    ) -> None:
        self.backend = resolve_backend(backend, exact)
        self.exact = self.backend in ("flat", "faiss_gpu", "torch")
        self.nlist = nlist
        self.nprobe = nprobe
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.device = device
        self.query_batch = query_batch
        self.db_batch = db_batch
        self.random_state = random_state
        self._index: Any = None
        self._db: Any = None
        self.n_: int = 0
        self.d_: int = 0

    # -- build -------------------------------------------------------------------------
    def fit(self, X: np.ndarray) -> KNNIndex:
        """Index ``X`` (converted to C-contiguous float32)."""
        X = _as_f32(X)
        self.n_, self.d_ = X.shape
        if self.backend == "torch":
            self._fit_torch(X)
            return self
        faiss = _faiss()
        n, d = X.shape
        if self.backend == "flat":
            index = faiss.IndexFlatL2(d)
        elif self.backend == "faiss_gpu":
            res = faiss.StandardGpuResources()
            index = faiss.GpuIndexFlatL2(res, d)
            self._gpu_res = res  # must outlive the index
        elif self.backend == "hnsw":
            index = faiss.IndexHNSWFlat(d, self.hnsw_m)
            index.hnsw.efConstruction = self.ef_construction
            index.hnsw.efSearch = self.ef_search
        elif self.backend == "ivf":
            nlist = self.nlist or int(4 * math.sqrt(n))
            nlist = int(max(1, min(nlist, n // 39)))
            quantizer = faiss.IndexFlatL2(d)
            index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_L2)
            index.cp.seed = self.random_state
            # 64 points per centroid train as well as all of them at a fraction of the time.
            n_train = min(n, 64 * nlist)
            if n_train < n:
                rng = np.random.default_rng(self.random_state)
                train = X[np.sort(rng.choice(n, n_train, replace=False))]
            else:
                train = X
            index.train(train)
            index.nprobe = int(min(nlist, self.nprobe or max(16, nlist // 16)))
        else:
            raise ValueError(f"unknown kNN backend {self.backend!r}")
        index.add(X)
        self._index = index
        return self

    def _torch_device(self) -> Any:
        import torch

        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def _fit_torch(self, X: np.ndarray) -> None:
        import torch

        dev = self._torch_device()
        db = torch.from_numpy(X).to(dev)
        self._db = (db, (db * db).sum(1))

    # -- query -------------------------------------------------------------------------
    def search(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(distances, indices)`` of the ``k`` nearest indexed rows of each query.

        Distances are Euclidean (not squared), float32, ascending; indices int64. Missing
        neighbours (``k > n`` or an IVF probe that found too few) are ``-1`` with ``inf``.
        """
        if self._index is None and self._db is None:
            raise RuntimeError("KNNIndex.search called before fit")
        Q = _as_f32(Q)
        if Q.shape[1] != self.d_:
            raise ValueError(f"query dimension {Q.shape[1]} != index dimension {self.d_}")
        if k <= 0 or Q.shape[0] == 0:
            return np.zeros((Q.shape[0], max(k, 0)), np.float32), np.zeros(
                (Q.shape[0], max(k, 0)), np.int64
            )
        if self.backend == "torch":
            D, indices = self._search_torch(Q, k)
        else:
            D, indices = self._index.search(Q, k)
            D = np.sqrt(np.maximum(D, 0.0, out=D), out=D)
        D = np.where(indices < 0, np.float32(np.inf), D).astype(np.float32, copy=False)
        return D, indices.astype(np.int64, copy=False)

    def _search_torch(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        import torch

        db, db_sq = self._db
        dev = db.device
        n = db.shape[0]
        kk = min(k, n)
        out_d = np.empty((Q.shape[0], k), np.float32)
        out_i = np.full((Q.shape[0], k), -1, np.int64)
        with torch.no_grad():
            for s in range(0, Q.shape[0], self.query_batch):
                q = torch.from_numpy(Q[s : s + self.query_batch]).to(dev)
                q_sq = (q * q).sum(1, keepdim=True)
                best_d = torch.full((q.shape[0], kk), float("inf"), device=dev)
                best_i = torch.full((q.shape[0], kk), -1, dtype=torch.int64, device=dev)
                for t in range(0, n, self.db_batch):
                    blk = db[t : t + self.db_batch]
                    # |q|^2 + |x|^2 - 2 q.x; the rounding error is ~1e-7 relative to the
                    # norms, far below the gaps that decide cluster structure.
                    d2 = torch.addmm(q_sq + db_sq[t : t + self.db_batch], q, blk.T, alpha=-2.0)
                    kb = min(kk, blk.shape[0])
                    vals, idx = torch.topk(d2, kb, dim=1, largest=False, sorted=False)
                    cand_d = torch.cat([best_d, vals], 1)
                    cand_i = torch.cat([best_i, idx + t], 1)
                    best_d, pos = torch.topk(cand_d, kk, dim=1, largest=False, sorted=True)
                    best_i = torch.gather(cand_i, 1, pos)
                e = s + q.shape[0]
                out_d[s:e, :kk] = best_d.clamp_min_(0).sqrt_().cpu().numpy()
                out_i[s:e, :kk] = best_i.cpu().numpy()
        if kk < k:
            out_d[:, kk:] = np.inf
        return out_d, out_i

    def __getstate__(self) -> dict[str, Any]:
        # FAISS CPU indexes pickle themselves; GPU/torch state is rebuilt by the receiver,
        # which keeps Ray object-store transfers small and device-agnostic.
        state = self.__dict__.copy()
        state.pop("_gpu_res", None)
        if self.backend == "faiss_gpu" and self._index is not None:
            state["_index"] = _faiss().index_gpu_to_cpu(self._index)
            state["backend"] = "flat"
        if self._db is not None:
            state["_db"] = None
            state["_db_host"] = self._db[0].cpu().numpy()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        host = state.pop("_db_host", None)
        self.__dict__.update(state)
        if host is not None:
            self._fit_torch(host)


def knn_search(
    X: np.ndarray,
    k: int,
    queries: np.ndarray | None = None,
    *,
    backend: Backend = "auto",
    exact: bool = True,
    **index_kwargs: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Build an index over ``X`` and return the ``k`` nearest rows of ``queries``.

    With ``queries=None`` this is the self-kNN graph: each row's first neighbour is
    (normally) itself at distance 0, which is how HDBSCAN* core distances are read off.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Database.
    k : int
        Neighbours per query.
    queries : ndarray of shape (m, d), optional
        Defaults to ``X``.
    backend, exact, **index_kwargs
        Forwarded to :class:`KNNIndex`.

    Returns
    -------
    distances : ndarray of shape (m, k), float32
        Euclidean distances, ascending.
    indices : ndarray of shape (m, k), int64
    """
    X = _as_f32(X)
    index = KNNIndex(backend, exact=exact, **index_kwargs).fit(X)
    return index.search(X if queries is None else queries, k)
