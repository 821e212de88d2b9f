"""The evaluate and explain stages' joined view of transactions, clusters and sessions."""

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from catalog.datasets import Catalog
from tasks.risk import transactions_view


def test_the_view_keeps_paths_as_whole_arrow_lists_with_the_same_pages(tmp_path: Path) -> None:
    """Paths read from several row groups come back in one chunk, page for page."""
    catalog = Catalog(str(tmp_path))
    ids = ["t0", "t1", "t2", "t3", "t4"]
    catalog.save_table("assignments", pd.DataFrame({"txn_id": ids, "cluster": [0, 0, 1, -1, 1]}))
    catalog.save_table("transactions", pd.DataFrame({"txn_id": ids, "amount": np.arange(5.0)}))
    paths = [["home", "cart"], ["home"], [], ["search", "item", "cart"], ["item"]]
    behaviour = pa.table({"n_events": [2, 1, 0, 3, 1], "path": paths, "txn_id": ids})
    pq.write_table(behaviour, catalog.uri("behaviour"), row_group_size=2)

    view = transactions_view(catalog, arrow_lists=True)

    assert isinstance(view["path"].dtype, pd.ArrowDtype)
    assert view["path"].array.__arrow_array__().num_chunks == 1
    assert view["path"].tolist() == paths
    as_arrays = transactions_view(catalog)["path"]
    assert [list(p) for p in as_arrays] == paths
    assert view["amount"].tolist() == list(np.arange(5.0))
