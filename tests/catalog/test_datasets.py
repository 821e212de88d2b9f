"""The catalog's writes: whole files, in one step, wherever the output root lives."""

from __future__ import annotations

from pathlib import Path

import fsspec
import pytest

from catalog.datasets import Catalog, digest_bytes


@pytest.mark.parametrize("root", ["local", "memory://shoal-test/run"])
def test_a_file_is_saved_as_the_bytes_it_holds(root: str, tmp_path: Path) -> None:
    catalog = Catalog(str(tmp_path / "run") if root == "local" else root)
    data = bytes(range(256)) * 1000
    source = tmp_path / "model.npz"
    source.write_bytes(data)
    catalog.save_file("clusterer", source)
    assert catalog.load_bytes("clusterer") == data
    catalog.save_bytes("clusterer", b"older")  # replaced whole, by either kind of write
    catalog.save_file("clusterer", source)
    assert digest_bytes(catalog.load_bytes("clusterer")) == digest_bytes(data)
    fs, path = fsspec.core.url_to_fs(catalog.root)
    assert [Path(p).name for p in fs.ls(path, detail=False)] == ["clusterer.npz"]  # no temp
