"""The catalog's writes: whole files, in one step, wherever the output root lives."""

from __future__ import annotations

from pathlib import Path

import fsspec
import numpy as np
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
    assert (back_ids == ids).all() and np.array_equal(back, vectors)
    assert catalog.save_bytes("summary", b"{}") == digest_bytes(b"{}")
