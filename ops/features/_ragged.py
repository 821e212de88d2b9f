"""Rows of varying length stored end to end: one flat array and the rows' offsets.

A session's tokens or dwell times as one numpy array per row cost a Python object per row:
at 1M sessions, splitting the Parquet list column into rows and concatenating them back for
the per-step sums took ~6 of the features stage's 20 s. :class:`Ragged` is a
``Sequence[np.ndarray]`` (row ``i`` is a view), so code written for lists of arrays reads it
unchanged, and whole-column code reads :attr:`Ragged.values` and :attr:`Ragged.lengths`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import overload

import numpy as np

__all__ = ["Ragged"]


class Ragged(Sequence[np.ndarray]):
    """Rows ``values[offsets[i]:offsets[i + 1]]``.

    Parameters
    ----------
    values : ndarray
        All rows' items, end to end.
    offsets : ndarray of int
        ``len(rows) + 1`` ascending positions into ``values``.

    Examples
    --------
    >>> rows = Ragged(np.arange(5), np.array([0, 2, 2, 5]))
    >>> len(rows), rows[2].tolist(), rows.lengths.tolist()
    (3, [2, 3, 4], [2, 0, 3])
    """

    def __init__(self, values: np.ndarray, offsets: np.ndarray) -> None:
        offsets = np.asarray(offsets, dtype=np.int64)
        start, stop = (int(offsets[0]), int(offsets[-1])) if len(offsets) else (0, 0)
        self.values = values[start:stop]
        self.offsets = offsets - start

    @property
    def lengths(self) -> np.ndarray:
        """Items per row."""
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return max(len(self.offsets) - 1, 0)

    @overload
    def __getitem__(self, i: int) -> np.ndarray: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[np.ndarray]: ...

    def __getitem__(self, i: int | slice) -> np.ndarray | Sequence[np.ndarray]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"row {i} of {len(self)}")
        return self.values[self.offsets[i] : self.offsets[i + 1]]

    def __iter__(self) -> Iterator[np.ndarray]:
        values, offsets = self.values, self.offsets
        return (values[offsets[i] : offsets[i + 1]] for i in range(len(self)))
