"""The features task lines every table up with the embeddings' rows."""

import numpy as np
import pandas as pd

from tasks.features import _in_order


def test_rows_follow_the_embeddings_order_whatever_order_they_come_in() -> None:
    ids = np.array(["t3", "t1", "t2"])
    frame = pd.DataFrame({"txn_id": ids, "amount": [3.0, 1.0, 2.0]}).set_index("txn_id", drop=False)
    assert _in_order(frame, ids) is frame  # already in order: no lookup, no copy
    ordered = _in_order(frame, np.array(["t1", "t2", "t3"]))
    assert ordered["amount"].tolist() == [1.0, 2.0, 3.0]
    assert _in_order(frame, np.array(["t2", "t3"]))["amount"].tolist() == [2.0, 3.0]
