"""The same data ingested from a real S3 endpoint and from local disk gets the same digests.

moto's server runs as a separate process on 127.0.0.1 (a free port), so s3fs talks HTTP to it
exactly as to AWS. s3fs is configured from the environment alone (``AWS_ENDPOINT_URL`` and
dummy credentials), which is also how a data engineer points Shoal at MinIO or a real bucket.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("s3fs")
pytest.importorskip("moto.server")

import s3fs

from catalog.readers import read_source
from catalog.synthetic import generate_shop
from tasks.ingest import IngestParams, run_ingest
from tasks.ingest_provenance import read_provenance
from tests.infra.s3_server import s3_server

BUCKET = "lake"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with s3_server(BUCKET) as env, pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        s3fs.S3FileSystem.clear_instance_cache()
        yield env["AWS_ENDPOINT_URL"]
    s3fs.S3FileSystem.clear_instance_cache()


def test_s3_and_local_disk_give_the_same_digests(s3_endpoint: str, tmp_path: Path) -> None:
    data = generate_shop(tmp_path / "local", n_transactions=400, seed=5)
    # Add a hive-partitioned copy of the events so directory listing on S3 is exercised too.
    events = pd.read_parquet(data.events)
    events_dir = tmp_path / "local" / "events_dir"
    for part, chunk in enumerate(
        (events.iloc[: len(events) // 2], events.iloc[len(events) // 2 :])
    ):
        (events_dir / f"part={part}").mkdir(parents=True)
        chunk.to_parquet(events_dir / f"part={part}" / "data.parquet", index=False)

    fs = s3fs.S3FileSystem()  # endpoint and credentials from the environment only
    fs.put(str(data.transactions), f"{BUCKET}/shop/transactions.parquet")
    fs.put(str(events_dir), f"{BUCKET}/shop/events_dir", recursive=True)

    local_events, s3_events = str(events_dir), f"s3://{BUCKET}/shop/events_dir"
    local_txns, s3_txns = str(data.transactions), f"s3://{BUCKET}/shop/transactions.parquet"
    assert read_source(s3_events)[1] == read_source(local_events)[1]

    params = IngestParams(partitions=2)
    local = run_ingest(local_events, local_txns, str(tmp_path / "out"), params)
    remote = run_ingest(s3_events, s3_txns, f"s3://{BUCKET}/runs/r1", params)

    assert remote.input_digests == local.input_digests
    assert remote.counts == local.counts
    for name in ("transactions", "sequences", "vocabulary"):
        assert remote.digests[name] == local.digests[name], name
    # The quarantine names each row's source, so only its location part differs.
    assert fs.exists(f"{BUCKET}/runs/r1/quarantine.parquet")
    lineage = read_provenance(f"s3://{BUCKET}/runs/r1")
    assert lineage is not None
    assert lineage["inputs"]["events"] == {
        "uri": s3_events,
        "digest": local.input_digests["events"],
    }
    sources = read_source(s3_events)[0].column("_source").to_pylist()
    assert sources[0].startswith(f"s3://{BUCKET}/shop/events_dir/part=0/")
