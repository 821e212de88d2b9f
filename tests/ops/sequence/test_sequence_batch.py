import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ops.sequence import SequenceCollator, SequenceDataset, collate_sequences


def test_collate_keeps_last_events_and_pads_right() -> None:
    b = collate_sequences(
        [np.array([2, 3, 4, 5], np.int32), np.array([7], np.int32)],
        [np.array([0.0, 1.0, 2.0, 3.0], np.float32), np.array([0.0], np.float32)],
        max_len=3,
    )
    assert b.tokens.dtype == torch.long and b.log_dwell.dtype == torch.float32
    assert b.tokens.tolist() == [[3, 4, 5], [7, 0, 0]]
    assert b.mask.tolist() == [[True, True, True], [True, False, False]]
    assert torch.allclose(b.log_dwell[0], torch.log1p(torch.tensor([1.0, 2.0, 3.0])))
    assert b.log_dwell[1, 1:].eq(0).all()
    assert b.lengths.tolist() == [3, 1]


def test_collate_sanitises_bad_dwell_and_rejects_mismatch() -> None:
    b = collate_sequences([np.array([2, 3])], [np.array([np.nan, -5.0])], max_len=4)
    assert torch.isfinite(b.log_dwell).all() and b.log_dwell.eq(0).all()
    with pytest.raises(ValueError):
        collate_sequences([np.array([2, 3])], [np.array([0.0])], max_len=4)


def test_dataset_and_collator_pad_to_longest_kept() -> None:
    tokens = np.array([2, 3, 4, 5, 6, 7], np.int32)
    dwell = np.arange(6, dtype=np.float32)
    ds = SequenceDataset.from_offsets(tokens, dwell, np.array([0, 1, 6]))
    assert len(ds) == 2 and ds[1][0].tolist() == [3, 4, 5, 6, 7]
    batch = next(iter(DataLoader(ds, batch_size=2, collate_fn=SequenceCollator(4))))
    assert batch.tokens.tolist() == [[2, 0, 0, 0], [4, 5, 6, 7]]
    empty = SequenceCollator(4)([(np.zeros(0, np.int32), np.zeros(0, np.float32))])
    assert empty.tokens.shape == (1, 1) and not empty.mask.any()
