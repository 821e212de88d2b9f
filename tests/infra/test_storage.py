"""Output locations: confined to the output root, published in one step."""

from __future__ import annotations

import threading
from pathlib import Path

import fsspec
import pytest

from infra.settings import Settings
from infra.storage import OutputError, OutputLocation, resolve_output


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("SHOAL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SHOAL_OUTPUT_ROOT", str(tmp_path / "root"))
    (tmp_path / "root").mkdir()
    return Settings()


def test_relative_and_absolute_paths_under_the_root_are_accepted(
    settings: Settings, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    assert resolve_output("2026-11-26", settings).uri == str(root / "2026-11-26")
    assert resolve_output(str(root / "a" / "b"), settings).uri == str(root / "a" / "b")
    assert resolve_output(f"file://{root}/c/", settings).uri == str(root / "c")
    assert resolve_output("./d", settings).uri == str(root / "d")


def test_default_root_is_runs_under_shoal_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOAL_HOME", str(tmp_path))
    monkeypatch.delenv("SHOAL_OUTPUT_ROOT", raising=False)
    assert resolve_output("x", Settings()).uri == str(tmp_path.resolve() / "runs" / "x")


@pytest.mark.parametrize(
    ("output", "says"),
    [
        ("../elsewhere", "'..' segment"),
        ("a/../../b", "'..' segment"),
        ("a\\..\\b", "'..' segment"),
        ("s3://bucket/runs/../other", "'..' segment"),
        ("/etc/shoal", "outside the output root"),
        ("s3://bucket", "folder below the bucket"),
        ("  ", "empty"),
    ],
)
def test_escapes_are_refused_with_the_location_named(
    settings: Settings, output: str, says: str
) -> None:
    with pytest.raises(OutputError, match=says) as err:
        resolve_output(output, settings)
    assert repr(output) in str(err.value) or says == "empty"


def test_the_root_itself_and_symlink_escapes_are_refused(
    settings: Settings, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    with pytest.raises(OutputError, match="outside the output root"):
        resolve_output(str(root), settings)
    (tmp_path / "outside").mkdir()
    (root / "sneaky").symlink_to(tmp_path / "outside")
    with pytest.raises(OutputError, match="outside the output root"):
        resolve_output("sneaky/run", settings)


def test_remote_uris_pass_through(settings: Settings) -> None:
    assert resolve_output("s3://lake/shoal/2026-11-26/", settings).uri == (
        "s3://lake/shoal/2026-11-26"
    )


def _stage(location: OutputLocation, files: dict[str, str]) -> None:
    staging = Path(location.staging)
    staging.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (staging / name).write_text(text)


def test_local_publish_swaps_complete_versions(tmp_path: Path) -> None:
    location = OutputLocation(str(tmp_path / "out"))
    assert location.staging == str(tmp_path / ".out.staging")
    _stage(location, {"clusters.parquet": "v1", "summary.json": "v1"})
    location.publish("a" * 32)
    out = Path(location.uri)
    assert out.is_symlink() and (out / "clusters.parquet").read_text() == "v1"
    assert not Path(location.staging).exists()

    # While v2 is published, a reader that resolves the location once (one version directory
    # per read) sees v1 or v2 in full, never a mix. Two opens through the link may straddle
    # the swap: each file is then whole, but from different versions.
    _stage(location, {"clusters.parquet": "v2", "summary.json": "v2"})
    seen: set[tuple[str, str]] = set()
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                version = out.resolve()
                names = ("clusters.parquet", "summary.json")
                seen.add(tuple((version / n).read_text() for n in names))
            except FileNotFoundError:  # the old version deleted under an open path
                seen.add(("gone", "gone"))

    reader = threading.Thread(target=read)
    reader.start()
    location.publish("b" * 32)
    stop.set()
    reader.join()
    assert seen <= {("v1", "v1"), ("v2", "v2"), ("gone", "gone")}
    assert (out / "clusters.parquet").read_text() == "v2"
    hidden = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert hidden == [f".out.{'b' * 32}"], "earlier versions are removed"


def test_local_publish_cleans_what_a_killed_publish_left(tmp_path: Path) -> None:
    location = OutputLocation(str(tmp_path / "out"))
    (tmp_path / f".out.{'c' * 32}").mkdir()  # renamed, then killed before the swap
    (tmp_path / f".out.{'c' * 32}.link").symlink_to("nowhere")
    (tmp_path / ".out.b.staging").mkdir()  # another location's staging: untouched
    _stage(location, {"summary.json": "ok"})
    location.publish("d" * 32)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [".out.b.staging", f".out.{'d' * 32}", "out"]


def test_an_unknown_directory_at_the_location_is_never_replaced(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    OutputLocation(str(tmp_path / "out")).check_publishable()  # empty: fine
    (tmp_path / "out" / "precious.txt").write_text("mine")
    with pytest.raises(OutputError, match="already holds files"):
        OutputLocation(str(tmp_path / "out")).check_publishable()


def test_remote_publish_writes_the_summary_last() -> None:
    fs = fsspec.filesystem("memory")
    location = OutputLocation("memory://bucket/runs/out")
    fs.pipe(f"{location.uri}/summary.json", b"old")
    fs.pipe(f"{location.staging}/summary.json", b"new")
    fs.pipe(f"{location.staging}/clusters.parquet", b"new")
    order: list[str] = []
    copy = fs.copy

    def recording_copy(source: str, target: str, **kwargs: object) -> None:
        order.append(target.rsplit("/", 1)[-1])
        assert not fs.exists("/bucket/runs/out/summary.json"), "old marker removed first"
        copy(source, target, **kwargs)

    fs.copy = recording_copy  # type: ignore[method-assign]
    try:
        location.publish("e" * 32)
    finally:
        del fs.copy
    assert order == ["clusters.parquet", "summary.json"]
    assert fs.cat(f"{location.uri}/summary.json") == b"new"
    assert not fs.exists(location.staging)
