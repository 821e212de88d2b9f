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

import ops.sequence._augment
import ops.sequence._encoder
import ops.sequence._objectives
import ops.sequence._rng_state
import ops.sequence._sequence_batch
import ops.sequence._training
import ops.sequence.losses._nt_xent
import ops.sequence.losses._reconstruction
import tasks.pretrain_worker
from catalog.datasets import Catalog, digest_bytes

# Where Ray Train V2 records a run's checkpoints; a run without it has nothing to resume.
CHECKPOINT_SNAPSHOT = "checkpoint_manager_snapshot.json"

_TRAINING_CODE: tuple[ModuleType, ...] = (
    ops.sequence._augment,
    ops.sequence._encoder,
    ops.sequence.losses._nt_xent,
    ops.sequence.losses._reconstruction,
    ops.sequence._objectives,
    ops.sequence._rng_state,
    ops.sequence._sequence_batch,
    ops.sequence._training,
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
    """The name of a training run: a digest of its data, destination, parameters and code.

    The same name resumes the same Ray Train run; any change starts a new one.
    """
    parts = {
        "sequences": digest_bytes(Catalog(output_root).load_bytes("sequences")),
        "output": output_root.rstrip("/"),
        "vocabulary_size": vocabulary_size,
        "max_len": max_len,
        "params": params,
        "code": code,
    }
    return "pretrain-" + hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]
