"""Session sequences and their encoder: batching, augmentation, objectives and training.

The Bi-LSTM session encoder, the bag-of-events baseline it has to beat, the
self-supervised objectives and losses (`ops.sequence.losses`), the plain PyTorch
training loop, and the random-generator state a checkpoint carries.
"""

from ops.sequence._bag_of_events import BagOfEventsEncoder
from ops.sequence._encoder import TimeAttentionBiLSTM
from ops.sequence._encoder_export import PackedSequenceEncoder, pack_sequences
from ops.sequence._equal_length import embed_concatenated
from ops.sequence._objectives import ContrastiveObjective, ReconstructionObjective, build_objective
from ops.sequence._rng_state import capture_rng, restore_rng
from ops.sequence._sequence_batch import (
    SequenceBatch,
    SequenceCollator,
    SequenceDataset,
    collate_sequences,
)
from ops.sequence._training import embed, evaluate, set_seed, train_epoch

__all__ = [
    "BagOfEventsEncoder",
    "ContrastiveObjective",
    "PackedSequenceEncoder",
    "ReconstructionObjective",
    "SequenceBatch",
    "SequenceCollator",
    "SequenceDataset",
    "TimeAttentionBiLSTM",
    "build_objective",
    "capture_rng",
    "collate_sequences",
    "embed",
    "embed_concatenated",
    "evaluate",
    "pack_sequences",
    "restore_rng",
    "set_seed",
    "train_epoch",
]
