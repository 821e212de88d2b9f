"""Ingest reads events piece by piece and sessionizes them on Dask: same answer as in memory.

Small lakes of several Parquet files with several row groups each, so pieces, the shuffle and
the joining of partitions are all real; one run on a distributed cluster (in-process workers,
p2p shuffle) must give the very same bytes as the threaded run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from distributed import Client, LocalCluster

from catalog.datasets import digest_bytes
from catalog.source_pieces import plan_pieces
from ops.ingest import sessionize_events
from tasks.ingest import IngestParams, run_ingest

FILES, ROW_GROUP = 3, 400
PIECES = IngestParams(piece_rows=ROW_GROUP)  # one row group a piece: many pieces


def _lake(folder: Path, n_txns: int = 300, n_events: int = 3000, seed: int = 0) -> pa.Table:
    """Transactions, and events spread over files in any order; returns all the events."""
    rng = np.random.default_rng(seed)
    names = np.array([f"t{i:04d}" for i in rng.permutation(n_txns)])
    start = 1_767_225_600_000 + rng.integers(0, 3_600_000, n_txns)
    pq.write_table(
        pa.table(
            {
                "txn_id": names,
                "ts": pa.array(start, pa.timestamp("ms", "UTC")),
                "amount": rng.gamma(2.0, 30.0, n_txns),
            }
        ),
        folder / "transactions.parquet",
    )
    txn = rng.integers(0, n_txns, n_events)
    events = pa.table(
        {
            "txn_id": names[txn],
            "ts": pa.array(
                start[txn] - rng.integers(0, 600_000, n_events), pa.timestamp("ms", "UTC")
            ),
            "event": np.array([f"page_{k}" for k in range(12)])[rng.zipf(1.6, n_events) % 12],
        }
    )
    (folder / "events").mkdir()
    for i, part in enumerate(np.array_split(np.arange(n_events), FILES)):
        pq.write_table(
            events.take(part), folder / "events" / f"part-{i}.parquet", row_group_size=ROW_GROUP
        )
    return events


def test_pieces_are_row_groups_numbered_within_their_file(tmp_path: Path) -> None:
    _lake(tmp_path)
    pieces = plan_pieces(str(tmp_path / "events"), max_rows=ROW_GROUP)
    assert len(pieces) == FILES * 3  # 1000 rows a file, 400 a row group
    first = [p for p in pieces if p.source.endswith("part-1.parquet")]
    assert [(p.row_groups, p.first_row) for p in first] == [((0,), 0), ((1,), 400), ((2,), 800)]
    # Consecutive groups up to the limit make one piece; a group never splits.
    pairs = [p for p in plan_pieces(str(tmp_path / "events"), 900) if p.source == first[0].source]
    assert [(p.row_groups, p.first_row) for p in pairs] == [((0, 1), 0), ((2,), 800)]


def test_out_of_core_ingest_equals_the_in_memory_sessionization(tmp_path: Path) -> None:
    events = _lake(tmp_path)
    out = tmp_path / "out"
    result = run_ingest(
        str(tmp_path / "events"), str(tmp_path / "transactions.parquet"), str(out), PIECES
    )
    expected, vocabulary = sessionize_events(events, max_len=32, vocabulary_size=64)
    sequences = pq.read_table(out / "sequences.parquet")
    assert sequences.equals(expected), "same sessions, tokens and dwell, in txn_id order"
    assert json.loads((out / "vocabulary.json").read_text()) == vocabulary
    assert result.counts["events"] == {
        "rows_in": 3000,
        "accepted": 3000,
        "quarantined": 0,
        "outside_window": 0,
    }
    assert result.counts["transactions"]["accepted"] == sequences.num_rows
    lineage = (out / "lineage.json").read_bytes()
    assert result.digests["lineage"] == digest_bytes(lineage)
    assert json.loads(lineage)["outputs"]["sequences"] == result.digests["sequences"]
    assert result.digests["sequences"] == digest_bytes((out / "sequences.parquet").read_bytes())
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "no staging left"


def test_bad_row_in_a_later_row_group_is_traced_to_its_line(tmp_path: Path) -> None:
    _lake(tmp_path)
    part = tmp_path / "events" / "part-2.parquet"
    table = pq.read_table(part)
    event = table.column("event").to_pylist()
    event[905] = None
    table = table.set_column(2, "event", pa.array(event, pa.string()))
    pq.write_table(table, part, row_group_size=ROW_GROUP)
    out = tmp_path / "out"
    result = run_ingest(
        str(tmp_path / "events"), str(tmp_path / "transactions.parquet"), str(out), PIECES
    )
    quarantine = pq.read_table(out / "quarantine.parquet").to_pylist()
    events_q = [q for q in quarantine if q["reason"] == "event is missing"]
    assert [(Path(q["source"]).name, q["row"]) for q in events_q] == [("part-2.parquet", 905)]
    c = result.counts["events"]
    assert (c["accepted"], c["quarantined"]) == (2999, 1)


def test_a_distributed_cluster_writes_the_same_bytes_as_threads(tmp_path: Path) -> None:
    _lake(tmp_path)
    args = (str(tmp_path / "events"), str(tmp_path / "transactions.parquet"))
    threaded = run_ingest(
        *args, str(tmp_path / "threads"), PIECES.model_copy(update={"partitions": 5})
    )
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster),
    ):
        distributed = run_ingest(*args, str(tmp_path / "cluster"), IngestParams(partitions=2))
    for name in ("sequences", "transactions", "vocabulary", "quarantine"):
        assert distributed.digests[name] == threaded.digests[name], name


def test_events_files_may_disagree_on_types_each_read_as_the_contract_allows(
    tmp_path: Path,
) -> None:
    events = _lake(tmp_path)
    part = tmp_path / "events" / "part-0.parquet"
    table = pq.read_table(part)
    as_text = pc.strftime(table.column("ts"), format="%Y-%m-%dT%H:%M:%SZ")
    pq.write_table(table.set_column(1, "ts", as_text), part, row_group_size=ROW_GROUP)
    out = tmp_path / "out"
    run_ingest(
        str(tmp_path / "events"), str(tmp_path / "transactions.parquet"), str(out), IngestParams()
    )
    expected, _ = sessionize_events(events, max_len=32, vocabulary_size=64)
    assert pq.read_table(out / "sequences.parquet").equals(expected)
