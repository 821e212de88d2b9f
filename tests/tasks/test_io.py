"""List columns as numpy: end to end with row ends, or one array per row."""

import numpy as np
import pyarrow as pa

from tasks.io import flat_lists, split_lists


def test_a_sliced_chunked_list_column_keeps_only_its_rows() -> None:
    column = pa.chunked_array([pa.array([[1, 2], [], [3]]), pa.array([[4, 5, 6]])]).slice(1, 3)
    values, ends = flat_lists(column, np.int64)
    assert values.tolist() == [3, 4, 5, 6]
    assert ends.tolist() == [0, 1, 4]
    assert [a.tolist() for a in split_lists(column, np.float32)] == [[], [3.0], [4.0, 5.0, 6.0]]
    assert split_lists(column.slice(0, 0), np.int64) == []
