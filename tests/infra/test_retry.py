"""Transient I/O errors are retried with growing, jittered delays; deterministic ones are not.

Faults are injected into fsspec's real local filesystem (its ``_open``), so the readers and the
catalog are exercised through the same code path as with an object store.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from fsspec.implementations.local import LocalFileSystem
from s3fs.errors import translate_boto_error

from catalog.datasets import Catalog
from catalog.readers import read_source, source_digest
from catalog.schemas import InputError
from infra import retry
from infra.retry import is_transient, retry_io
from infra.settings import Settings

BASE = 0.25


@pytest.fixture
def delays(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """Backoff delays requested, instead of slept; four attempts with a 0.25 s base."""
    seen: list[float] = []
    monkeypatch.setattr(retry, "_sleep", seen.append)
    monkeypatch.setenv("SHOAL_IO_RETRY_ATTEMPTS", "4")
    monkeypatch.setenv("SHOAL_IO_RETRY_BASE_DELAY_S", str(BASE))
    monkeypatch.setenv("SHOAL_IO_RETRY_MAX_DELAY_S", "10")
    from infra.settings import get_settings

    get_settings.cache_clear()
    yield seen
    get_settings.cache_clear()


def flaky(failures: list[BaseException], then: Callable[[], Any]) -> tuple[Callable[[], Any], list]:
    """A call that raises each of ``failures`` in turn, then returns ``then()``."""
    calls: list[int] = []

    def call() -> Any:
        calls.append(1)
        if len(calls) <= len(failures):
            raise failures[len(calls) - 1]
        return then()

    return call, calls


def _client_error(code: str, status: int) -> ClientError:
    response = {
        "Error": {"Code": code, "Message": code},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "GetObject")


@pytest.mark.parametrize(
    "err",
    [
        ConnectionResetError(errno.ECONNRESET, "reset by peer"),
        TimeoutError("read timed out"),
        OSError(errno.EIO, "input/output error"),
        OSError(errno.ETIMEDOUT, "timed out"),
        translate_boto_error(_client_error("SlowDown", 503)),  # s3fs: OSError(EBUSY)
        translate_boto_error(_client_error("InternalError", 500)),  # s3fs: OSError(EREMOTEIO)
        translate_boto_error(_client_error("RequestTimeout", 400)),  # s3fs: TimeoutError
        _client_error("ThrottlingException", 400),
        _client_error("WhateverBackendError", 502),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
    ],
    ids=repr,
)
def test_transient_errors_are_recognised(err: BaseException) -> None:
    assert is_transient(err)


@pytest.mark.parametrize(
    "err",
    [
        FileNotFoundError(errno.ENOENT, "no such file"),
        PermissionError(errno.EACCES, "denied"),
        IsADirectoryError(errno.EISDIR, "is a directory"),
        InputError("txns.csv: missing column 'amount'"),
        pa.ArrowInvalid("CSV parse error: expected 3 columns, got 2"),
        translate_boto_error(_client_error("NoSuchKey", 404)),  # s3fs: FileNotFoundError
        translate_boto_error(_client_error("AccessDenied", 403)),  # s3fs: PermissionError
        OSError(errno.EINVAL, "invalid argument"),
        RuntimeError("a bug"),
    ],
    ids=repr,
)
def test_deterministic_errors_are_recognised(err: BaseException) -> None:
    assert not is_transient(err)


def test_transient_errors_are_retried_with_growing_jittered_delays(
    delays: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    call, calls = flaky(
        [
            ConnectionResetError(errno.ECONNRESET, "reset"),
            TimeoutError("slow"),
            OSError(errno.EIO, "io"),
        ],
        lambda: "data",
    )
    with caplog.at_level(logging.WARNING, logger="shoal.io"):
        assert retry_io("read s3://lake/t.csv", call) == "data"
    assert len(calls) == 4
    assert len(delays) == 3
    for attempt, delay in enumerate(delays):  # base * 2^n plus up to one base of jitter
        assert BASE * 2**attempt <= delay <= BASE * 2**attempt + BASE
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3
    assert "read s3://lake/t.csv failed (attempt 1 of 4: ConnectionResetError" in lines[0]
    assert f"retrying in {delays[2]:.2f} s" in lines[2]


def test_jitter_spreads_the_delays(delays: list[float]) -> None:
    for _ in range(5):
        call, _ = flaky([ConnectionResetError()], lambda: None)
        retry_io("read x", call)
    assert len(set(delays)) > 1


def test_a_deterministic_error_is_raised_after_one_attempt(delays: list[float]) -> None:
    call, calls = flaky([PermissionError(errno.EACCES, "denied")] * 5, lambda: None)
    with pytest.raises(PermissionError):
        retry_io("read x", call)
    assert len(calls) == 1 and delays == []


def test_the_last_transient_error_is_raised_when_attempts_run_out(delays: list[float]) -> None:
    call, calls = flaky(
        [ConnectionResetError(errno.ECONNRESET, f"reset {i}") for i in range(9)], lambda: 1
    )
    with pytest.raises(ConnectionResetError, match="reset 3"):
        retry_io("read x", call)
    assert len(calls) == 4 and len(delays) == 3


def test_delays_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[float] = []
    monkeypatch.setattr(retry, "_sleep", seen.append)
    settings = Settings(
        SHOAL_IO_RETRY_ATTEMPTS=6, SHOAL_IO_RETRY_BASE_DELAY_S=1, SHOAL_IO_RETRY_MAX_DELAY_S=3
    )
    call, _ = flaky([TimeoutError()] * 5, lambda: None)
    retry_io("read x", call, settings)
    assert max(seen) <= 3 and seen[-1] == 3


class FaultyOpen:
    """Replaces ``LocalFileSystem._open``: the first ``n`` opens of matching paths fail."""

    def __init__(self, match: str, errors: list[BaseException]) -> None:
        self.match, self.errors, self.failed = match, list(errors), 0
        self.real = LocalFileSystem._open

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FaultyOpen:
        def _open(fs: LocalFileSystem, path: str, mode: str = "rb", **kwargs: Any) -> Any:
            if self.match in str(path) and self.errors:
                self.failed += 1
                raise self.errors.pop(0)
            return self.real(fs, path, mode, **kwargs)

        monkeypatch.setattr(LocalFileSystem, "_open", _open)
        return self


@pytest.fixture
def transactions_csv(tmp_path: Path) -> Path:
    path = tmp_path / "in" / "transactions.csv"
    path.parent.mkdir()
    pd.DataFrame({"txn_id": ["a", "b"], "ts": ["2026-01-01T00:00:00", "2026-01-01T00:01:00"],
                  "amount": [1.0, 2.0]}).to_csv(path, index=False)  # fmt: skip
    return path


def test_reading_a_source_survives_connection_resets(
    delays: list[float], monkeypatch: pytest.MonkeyPatch, transactions_csv: Path
) -> None:
    clean_table, clean_digest = read_source(str(transactions_csv))
    fault = FaultyOpen(
        "transactions.csv", [ConnectionResetError(errno.ECONNRESET, "reset")] * 2
    ).install(monkeypatch)
    table, digest = read_source(str(transactions_csv))
    assert fault.failed == 2 and len(delays) == 2
    assert digest == clean_digest and table.equals(clean_table)

    fault.errors = [TimeoutError("slow")]
    assert source_digest(str(transactions_csv)) == clean_digest  # restarts the file's hash
    assert fault.failed == 3


def test_an_unreadable_source_fails_at_once_naming_the_file(
    delays: list[float], monkeypatch: pytest.MonkeyPatch, transactions_csv: Path
) -> None:
    fault = FaultyOpen("transactions.csv", [PermissionError(errno.EACCES, "denied")] * 3).install(
        monkeypatch
    )
    with pytest.raises(InputError, match=f"{transactions_csv}: unreadable"):
        read_source(str(transactions_csv))
    assert fault.failed == 1 and delays == []


def test_catalog_writes_and_reads_survive_transient_errors(
    delays: list[float], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    catalog = Catalog(str(tmp_path / "run"))
    fault = FaultyOpen(
        "summary.json", [OSError(errno.EIO, "io"), BrokenPipeError(errno.EPIPE, "pipe")]
    ).install(monkeypatch)
    catalog.save_json("summary", {"n": 1})
    assert fault.failed == 2
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["summary.json"]  # no temp left

    fault.errors = [ConnectionResetError(errno.ECONNRESET, "reset")]
    assert catalog.load_json("summary") == {"n": 1}
    assert fault.failed == 3 and len(delays) == 3

    fault.errors = [FileNotFoundError(errno.ENOENT, "gone")] * 3
    with pytest.raises(FileNotFoundError):
        catalog.load_json("summary")
    assert fault.failed == 4
