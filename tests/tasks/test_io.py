"""List columns as numpy: end to end with row ends, or one array per row; joins on ids."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from tasks.io import flat_lists, in_order, join_on_ids, same_order, split_lists


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


@pytest.mark.parametrize("kind", ["numpy", "arrow", "column"])
def test_rows_follow_the_order_of_the_ids_asked_whatever_order_they_come_in(kind: str) -> None:
    """A table's rows line up with the embeddings' ids; compared first, then looked up."""
    ids = np.array(["t3", "t1", "t2"])
    as_kind = {
        "numpy": lambda x: np.asarray(x),
        "arrow": lambda x: pa.chunked_array([pa.array(x[:1]), pa.array(x[1:])]),
        "column": lambda x: pd.Series(x, dtype="str"),
    }[kind]
    frame = pd.DataFrame({"amount": [3.0, 1.0, 2.0]})
    assert in_order(frame, as_kind(ids), as_kind(ids)) is frame  # no lookup, no copy
    assert same_order(as_kind(ids), ids) and not same_order(as_kind(ids), ids[::-1])
    assert not same_order(as_kind(ids), ids[:2])
    ordered = in_order(frame, as_kind(ids), as_kind(np.array(["t1", "t2", "t3"])))
    assert ordered["amount"].tolist() == [1.0, 2.0, 3.0]
    vectors = np.array([[3.0], [1.0], [2.0]])
    picked = in_order(vectors, as_kind(ids), as_kind(np.array(["t2", "t3"])))
    assert picked.ravel().tolist() == [2.0, 3.0]
    with pytest.raises(KeyError, match="t9"):
        in_order(frame, as_kind(ids), as_kind(np.array(["t1", "t9"])))
