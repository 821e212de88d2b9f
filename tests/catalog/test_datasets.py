"""The catalog's writes: whole files, in one step, wherever the output root lives."""

from __future__ import annotations

import itertools
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pytest

from catalog.datasets import Catalog, digest_bytes


@pytest.mark.parametrize("root", ["local", "memory://shoal-test/run"])
def test_a_model_is_streamed_into_its_dataset(root: str, tmp_path: Path) -> None:
    from ops.phdbscan import PHDBSCAN

    catalog = Catalog(str(tmp_path / "run") if root == "local" else root)
    X = np.random.default_rng(0).normal(size=(300, 3))
    model = PHDBSCAN(min_cluster_size=10).fit(X)
    catalog.save_bytes("clusterer", b"older")  # replaced whole
    digest = catalog.save_stream("clusterer", model.save)  # a sink that cannot seek
    assert digest == digest_bytes(catalog.load_bytes("clusterer"))
    with catalog.local_file("clusterer") as path:
        loaded = PHDBSCAN.load(path)
    np.testing.assert_array_equal(loaded.labels_, model.labels_)
    np.testing.assert_array_equal(loaded.approximate_predict(X)[0], model.labels_)
    fs, path = fsspec.core.url_to_fs(catalog.root)
    assert [Path(p).name for p in fs.ls(path, detail=False)] == ["clusterer.npz"]  # no temp


@pytest.mark.parametrize("root", ["local", "memory://shoal-test/files"])
def test_a_dataset_is_read_as_a_local_file_wherever_it_lives(root: str, tmp_path: Path) -> None:
    catalog = Catalog(str(tmp_path / "run") if root == "local" else root)
    catalog.save_bytes("clusterer", b"model bytes")
    with catalog.local_file("clusterer") as path:
        assert Path(path).read_bytes() == b"model bytes"
        assert Path(path).name == "clusterer.npz"
    # a local dataset is its own file; a remote one a copy that is gone afterwards
    assert Path(path).exists() == (root == "local")


@pytest.mark.parametrize("root", ["local", "memory://shoal-test/tables"])
def test_a_table_is_streamed_to_its_file_and_its_digest_is_the_files(
    root: str, tmp_path: Path
) -> None:
    catalog = Catalog(str(tmp_path / "run") if root == "local" else root)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(50_000, 8)).astype(np.float32)  # several Parquet pages
    ids = np.array([f"t{i}" for i in range(len(vectors))])
    digest = catalog.save_vectors("hybrid", ids, vectors)
    assert digest == digest_bytes(catalog.load_bytes("hybrid"))
    back_ids, back = catalog.load_vectors("hybrid")
    assert back_ids.to_pylist() == ids.tolist() and np.array_equal(back, vectors)
    assert catalog.save_bytes("summary", b"{}") == digest_bytes(b"{}")


@pytest.mark.parametrize("root", ["local", "memory://shoal-test/blocks"])
def test_vectors_computed_a_block_at_a_time_are_written_as_row_groups(
    root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.parquet as pq

    import catalog.datasets as datasets

    monkeypatch.setattr(datasets, "VECTOR_ROWS", 1_000)
    catalog = Catalog(str(tmp_path / "run") if root == "local" else root)
    vectors = np.random.default_rng(1).normal(size=(2_500, 4)).astype(np.float32)
    ids = np.array([f"t{i}" for i in range(len(vectors))])
    asked: list[tuple[int, int]] = []

    def rows(start: int, stop: int) -> np.ndarray:
        asked.append((start, stop))
        return vectors[start:stop]

    catalog.save_vector_rows("hybrid", ids, 4, rows)
    assert asked == [(0, 1_000), (1_000, 2_000), (2_000, 2_500)]  # never the whole matrix
    back_ids, back = catalog.load_vectors("hybrid")
    assert back_ids.to_pylist() == ids.tolist() and np.array_equal(back, vectors)
    with catalog.local_file("hybrid") as path:
        assert pq.ParquetFile(path).metadata.num_row_groups == 3
    # some rows, read a row group at a time: any order, repeats, none
    for picked in ([2_499, 0, 1_000, 999, 1_000, 1_742], [], [5]):
        got = catalog.load_vector_rows("hybrid", np.array(picked, dtype=np.int64))
        assert np.array_equal(got, vectors[picked].reshape(-1, 4))
    with pytest.raises(IndexError, match="rows of 'hybrid' run from 0 to 2499"):
        catalog.load_vector_rows("hybrid", np.array([3, 2_500]))


def test_a_block_of_the_wrong_shape_names_its_rows(tmp_path: Path) -> None:
    catalog = Catalog(str(tmp_path / "run"))
    ids = np.array(["a", "b", "c"])
    with pytest.raises(ValueError, match=r"rows 0:3 of 'hybrid' have shape \(3, 2\), expected"):
        catalog.save_vector_rows("hybrid", ids, 3, lambda a, b: np.zeros((b - a, 2)))
    assert not catalog.exists("hybrid")  # nothing half-written


def test_a_table_read_from_a_local_file_outlives_its_replacement(tmp_path: Path) -> None:
    """A local table is memory-mapped; a new version is renamed onto it, not written into it."""
    catalog = Catalog(str(tmp_path / "run"))
    catalog.save_table("risk", pd.DataFrame({"cluster": [1, 2, 3]}))
    first = catalog.load_table("risk")
    catalog.save_table("risk", pd.DataFrame({"cluster": [7, 8]}))
    assert first.column("cluster").to_pylist() == [1, 2, 3]
    assert catalog.load_table("risk", ["cluster"]).column("cluster").to_pylist() == [7, 8]


@pytest.mark.parametrize("root", ["local", "memory://shoal-test/columns"])
def test_a_table_is_read_without_the_columns_left_out(root: str, tmp_path: Path) -> None:
    catalog = Catalog(str(tmp_path / "run") if root == "local" else root)
    frame = pd.DataFrame({"txn_id": ["a", "b"], "user_id": ["u", "v"], "amount": [1.0, 2.0]})
    catalog.save_table("transactions", frame)
    assert catalog.load_table("transactions", leave_out={"user_id"}).column_names == [
        "txn_id",
        "amount",
    ]
    chosen = catalog.load_table("transactions", ["amount", "user_id"], leave_out={"user_id"})
    assert chosen.to_pydict() == {"amount": [1.0, 2.0]}
    assert catalog.load_table("transactions", [], leave_out={"user_id"}).num_columns == 0


@pytest.mark.parametrize("root", ["local", "memory://shoal-test/lists"])
def test_list_columns_are_read_as_their_items_end_to_end_and_offsets(
    root: str, tmp_path: Path
) -> None:
    """Row group by row group, empty and missing lists included, as the rows were written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    catalog = Catalog(str(tmp_path / "run") if root == "local" else root)
    rng = np.random.default_rng(2)
    tokens: list[list[int] | None] = [
        rng.integers(0, 9, rng.integers(0, 5)).tolist() for _ in range(1_000)
    ]
    tokens[3], tokens[10], tokens[-1] = None, [], []
    dwell = [None if t is None else [x / 2 for x in t] for t in tokens]
    table = pa.table(
        {
            "txn_id": [f"t{i}" for i in range(len(tokens))],
            "tokens": pa.array(tokens, pa.list_(pa.int32())),
            "dwell": pa.array(dwell, pa.list_(pa.float32())),
        }
    )
    catalog.save_stream("sequences", lambda sink: pq.write_table(table, sink, row_group_size=97))
    ids, lists = catalog.load_lists("sequences", {"tokens": np.int32, "dwell": np.float32})
    assert ids.to_pylist() == table.column("txn_id").to_pylist()
    for column, kind in (("tokens", np.int32), ("dwell", np.float32)):
        values, offsets = lists[column]
        assert values.dtype == kind and offsets[0] == 0 and offsets[-1] == len(values)
        rows = [values[a:b].tolist() for a, b in itertools.pairwise(offsets)]
        assert rows == [t or [] for t in table.column(column).to_pylist()]
