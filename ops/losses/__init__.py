"""Self-supervised objectives for the session encoder, one per module."""

from ops.losses.nt_xent import NTXentLoss
from ops.losses.reconstruction import SequenceReconstructionLoss

__all__ = ["NTXentLoss", "SequenceReconstructionLoss"]
