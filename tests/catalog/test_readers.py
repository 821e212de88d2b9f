from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from catalog.datasets import Catalog
from catalog.readers import read_source
from catalog.schemas import EVENTS, TRANSACTIONS, InputError, check_contract

ROWS = pd.DataFrame({"txn_id": ["a", "b"], "ts": ["2026-01-01T00:00:00Z"] * 2, "amount": [1, 2]})


def test_every_format_reads_to_the_same_rows_with_source_and_row(tmp_path: Path) -> None:
    ROWS.to_parquet(tmp_path / "t.parquet")
    ROWS.to_csv(tmp_path / "t.csv", index=False)
    ROWS.to_json(tmp_path / "t.jsonl", orient="records", lines=True)
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress((tmp_path / "t.csv").read_bytes()))
    for name in ("t.parquet", "t.csv", "t.jsonl", "t.csv.gz"):
        table, digest = read_source(str(tmp_path / name))
        assert table.column("txn_id").to_pylist() == ["a", "b"], name
        assert table.column("_row").to_pylist() == [0, 1]
        assert table.column("_source").to_pylist()[0].endswith(name)
        assert len(digest) == 16


def test_hive_partitions_become_columns(tmp_path: Path) -> None:
    for day in ("2026-01-01", "2026-01-02"):
        folder = tmp_path / f"day={day}"
        folder.mkdir()
        ROWS.to_parquet(folder / "part-0.parquet")
    table, _ = read_source(str(tmp_path))
    assert table.num_rows == 4
    assert sorted(set(table.column("day").to_pylist())) == ["2026-01-01", "2026-01-02"]


def test_digest_follows_content_not_location(tmp_path: Path) -> None:
    ROWS.to_parquet(tmp_path / "a.parquet")
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "b.parquet").write_bytes((tmp_path / "a.parquet").read_bytes())
    assert read_source(str(tmp_path / "a.parquet"))[1] == read_source(str(tmp_path / "copy"))[1]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.csv", None, "no such file"),
        ("empty.csv", b"txn_id,ts,amount\n", "input is empty"),
        ("corrupt.parquet", b"PAR1 not really", "unreadable or corrupt"),
        ("data.xlsx", b"x", "unknown file type"),
    ],
)
def test_fatal_defects_name_the_file(
    tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    if content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError, match=message) as err:
        read_source(str(tmp_path / name))
    assert name in str(err.value)


def test_contract_names_the_missing_column_and_impossible_types() -> None:
    with pytest.raises(InputError, match="missing required column 'event'"):
        check_contract(pa.table({"txn_id": ["a"], "ts": [1]}), EVENTS, "ev.csv")
    bad = pa.table({"txn_id": ["a"], "ts": [True], "amount": [1.0]})
    with pytest.raises(InputError, match=r"column 'ts' .* cannot be read as a timestamp"):
        check_contract(bad, TRANSACTIONS, "tx.csv")
    check_contract(pa.table({"txn_id": [1], "ts": ["x"], "amount": ["3"]}), TRANSACTIONS, "ok")


def test_catalog_writes_atomically_and_versions_by_content(tmp_path: Path) -> None:
    catalog = Catalog(str(tmp_path / "run"))
    first = catalog.save_table("clusters", ROWS)
    assert catalog.save_table("clusters", ROWS) == first
    assert catalog.save_table("clusters", ROWS.head(1)) != first
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["clusters.parquet"]
    assert catalog.load_frame("clusters").shape == (1, 3)
