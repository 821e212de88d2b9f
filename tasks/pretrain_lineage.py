"""Pretrain's identity: which Ray Train run a pretraining resumes, or reuses once finished.

Ray Train V2 restores a run from its storage when a new trainer gets the same
``RunConfig(name, storage_path)``: ``ray.train.get_checkpoint()`` then returns the run's latest
checkpoint, in any process. So the name is a digest of everything that determines the model:
the sequences by content, the output location they were staged in, the parameters and the
training code. A rerun of a killed command lands on the same name and resumes; any change
starts a new run instead of resuming an incompatible one.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from types import ModuleType
from typing import Any

import ops.augment
import ops.encoder
import ops.losses.nt_xent
import ops.losses.reconstruction
import ops.objectives
import ops.rng_state
import ops.sequence_batch
import ops.training
import tasks.pretrain_worker
from catalog.datasets import Catalog, digest_bytes

_TRAINING_CODE: tuple[ModuleType, ...] = (
    ops.augment,
    ops.encoder,
    ops.losses.nt_xent,
    ops.losses.reconstruction,
    ops.objectives,
    ops.rng_state,
    ops.sequence_batch,
    ops.training,
    tasks.pretrain_worker,
)


def training_code_digest() -> str:
    """The training code's own text, not the commit: other edits keep resuming and reusing."""
    digest = hashlib.sha256()
    for module in _TRAINING_CODE:
        digest.update(inspect.getsource(module).encode())
    return digest.hexdigest()[:16]


def training_name(
    output_root: str, vocabulary_size: int, max_len: int, params: dict[str, Any], code: str
) -> str:
    parts = {
        "sequences": digest_bytes(Catalog(output_root).load_bytes("sequences")),
        "output": output_root.rstrip("/"),
        "vocabulary_size": vocabulary_size,
        "max_len": max_len,
        "params": params,
        "code": code,
    }
    return "pretrain-" + hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]
