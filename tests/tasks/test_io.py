"""List columns as numpy: end to end with row ends, or one array per row; joins on ids."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from tasks.io import flat_lists, join_on_ids, split_lists


def test_a_sliced_chunked_list_column_keeps_only_its_rows() -> None:
    column = pa.chunked_array([pa.array([[1, 2], [], [3]]), pa.array([[4, 5, 6]])]).slice(1, 3)
    values, ends = flat_lists(column, np.int64)
    assert values.tolist() == [3, 4, 5, 6]
    assert ends.tolist() == [0, 1, 4]
    assert [a.tolist() for a in split_lists(column, np.float32)] == [[], [3.0], [4.0, 5.0, 6.0]]
    assert split_lists(column.slice(0, 0), np.int64) == []


@pytest.mark.parametrize(
    "ids", [["a", "b", "c"], ["c", "a", "b"], ["b", "c"], ["a", "b", "c", "d"]]
)
def test_a_join_on_ids_is_a_left_join_in_any_order(ids: list[str]) -> None:
    """Rows in the same order are put side by side; any other order is joined by id."""
    view = pd.DataFrame({"txn_id": ["a", "b", "c"], "cluster": [0, 1, -1]}, index=[5, 6, 7])
    other = pd.DataFrame({"txn_id": ids, "amount": np.arange(len(ids), dtype=float)})
    expected = view.join(other.set_index("txn_id"), on="txn_id")
    pd.testing.assert_frame_equal(join_on_ids(view, other), expected)
