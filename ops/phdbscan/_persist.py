"""PHDBSCAN model files: arrays and scalars in one ``.npz``, no pickle."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from ops.phdbscan._condensed_tree import PredictionTables
from ops.phdbscan._knn_graph import CellIndex

if TYPE_CHECKING:
    from ops.phdbscan._estimator import PHDBSCAN

__all__ = ["load_model", "save_model"]

_SAVE_VERSION = 2
_NONE = "__none__"
# how a fit runs, not what it found: a loaded model gets the default
_RUNTIME_PARAMS = ("knn_map",)
# fitted arrays kept under these file keys
_ARRAYS = {
    "X": "_raw_data",
    "labels": "labels_",
    "probabilities": "probabilities_",
    "outlier_scores": "outlier_scores_",
    "core_distances": "core_distances_",
    "pred_core": "_pred_core",
    "condensed_tree": "_condensed_tree",
    "mst": "_min_spanning_tree",
    "cluster_persistence": "cluster_persistence_",
}


def save_model(model: PHDBSCAN, path: str | os.PathLike[str] | BinaryIO) -> None:
    """Write what prediction and the fitted attributes need to ``path`` with ``np.savez``.

    ``path`` may be a binary file open for writing; it need not be seekable.
    """
    arrays: dict[str, Any] = {
        "version": np.int64(_SAVE_VERSION),
        "ms_predict": np.int64(model._ms_predict),
        "mode_": np.str_(model.mode_),
        "knn_backend_": np.str_(model.knn_backend_),
    }
    arrays.update({key: getattr(model, attr) for key, attr in _ARRAYS.items()})
    for key, val in model.get_params().items():
        if key in _RUNTIME_PARAMS:
            continue
        arrays["param_" + key] = np.array(val if val is not None else _NONE)
    arrays.update(model._tables.to_dict())
    if isinstance(model._pred_index, CellIndex):  # the fit's cells, searched by new points
        arrays.update(model._pred_index.to_dict())
    if not isinstance(path, (str, os.PathLike)):
        np.savez(path, **arrays)
        return
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def load_model(cls: type[PHDBSCAN], path: str | os.PathLike[str]) -> PHDBSCAN:
    """Rebuild a fitted model written by :func:`save_model` (``allow_pickle=False``)."""
    with np.load(Path(path), allow_pickle=False) as data:
        if int(data["version"]) not in (1, _SAVE_VERSION):
            raise ValueError(f"unsupported PHDBSCAN file version {int(data['version'])}")
        params: dict[str, Any] = {}
        for key in data.files:
            if key.startswith("param_"):
                val = data[key].item()
                params[key[6:]] = None if val == _NONE else val
        model = cls(**params)
        for key, attr in _ARRAYS.items():
            # version 1 files hold no tree or persistence: those attributes come back empty
            setattr(model, attr, data[key] if key in data.files else np.zeros((0, 3)))
        model._ms_predict = int(data["ms_predict"])
        model.mode_ = str(data["mode_"])
        model.knn_backend_ = str(data["knn_backend_"])
        model.n_features_in_ = model._raw_data.shape[1]
        model._tables = PredictionTables.from_dict(dict(data))
        model._reset_caches()
        if "cells_params" in data.files:
            model._pred_index = CellIndex.from_dict(data, model._raw_data)
    return model
