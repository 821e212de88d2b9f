"""Self-supervised objectives for the session encoder, one per module."""

from ops.sequence.losses._nt_xent import NTXentLoss
from ops.sequence.losses._reconstruction import SequenceReconstructionLoss

__all__ = ["NTXentLoss", "SequenceReconstructionLoss"]
