"""PHDBSCAN model files: arrays and scalars in one ``.npz``, no pickle."""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from ops.phdbscan._condensed_tree import PredictionTables
from ops.phdbscan._knn_graph import CellIndex

if TYPE_CHECKING:
    from ops.phdbscan._estimator import PHDBSCAN

__all__ = ["load_model", "save_model"]

_SAVE_VERSION = 2
#: members smaller than this are read; larger ones are mapped (`_stored_arrays`)
_MAP_BYTES = 1 << 20
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
    # written beside the file and renamed onto it: a model loaded from the old file maps it
    # (`_stored_arrays`), and a save cut short leaves the old file whole
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_model(cls: type[PHDBSCAN], path: str | os.PathLike[str]) -> PHDBSCAN:
    """Rebuild a fitted model written by :func:`save_model` (``allow_pickle=False``)."""
    data = _stored_arrays(Path(path))
    if int(data["version"]) not in (1, _SAVE_VERSION):
        raise ValueError(f"unsupported PHDBSCAN file version {int(data['version'])}")
    params: dict[str, Any] = {}
    for key in data:
        if key.startswith("param_"):
            val = data[key].item()
            params[key[6:]] = None if val == _NONE else val
    model = cls(**params)
    for key, attr in _ARRAYS.items():
        # version 1 files hold no tree or persistence: those attributes come back empty
        setattr(model, attr, data[key] if key in data else np.zeros((0, 3)))
    model._ms_predict = int(data["ms_predict"])
    model.mode_ = str(data["mode_"])
    model.knn_backend_ = str(data["knn_backend_"])
    model.n_features_in_ = model._raw_data.shape[1]
    model._tables = PredictionTables.from_dict(data)
    model._reset_caches()
    if "cells_params" in data:
        model._pred_index = CellIndex.from_dict(data, model._raw_data)
    return model


def _stored_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``np.savez`` file, the large ones mapped from the file where they lie.

    ``np.load`` reads each member into fresh memory, the training rows included (hundreds
    of MB at millions of rows; benchmarks/README.md). ``savez`` stores members
    uncompressed, each a ``.npy`` image at an offset in the file, which is mapped instead:
    pages are read when touched, and prediction touches the rows of a few exemplars and
    candidates. Copy-on-write, so the arrays stay writable, as ``np.load``'s are, and the
    file is never written; the mapping outlives the file's replacement or removal.
    """
    arrays: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as archive, open(path, "rb") as fh:
        for info in archive.infolist():
            key = info.filename.removesuffix(".npy")
            if info.compress_type != zipfile.ZIP_STORED or info.file_size < _MAP_BYTES:
                with archive.open(info) as member:
                    arrays[key] = np.lib.format.read_array(member, allow_pickle=False)
                continue
            # a local file header: 30 bytes, then the name and an extra field of its own
            fh.seek(info.header_offset + 26)
            name_length, extra_length = struct.unpack("<HH", fh.read(4))
            fh.seek(info.header_offset + 30 + name_length + extra_length)
            version = np.lib.format.read_magic(fh)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran_order, dtype = read_header(fh)
            if dtype.hasobject:
                raise ValueError(f"{path}: member {key!r} holds Python objects")
            mapped = np.memmap(
                path,
                dtype=dtype,
                mode="c",
                offset=fh.tell(),
                shape=shape,
                order="F" if fortran_order else "C",
            )
            arrays[key] = np.asarray(mapped)
    return arrays
