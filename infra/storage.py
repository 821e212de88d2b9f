"""Output locations: where a run may write, and how its outputs appear there all at once.

A user's ``--output`` is confined to the output root (``SHOAL_OUTPUT_ROOT``, default
``SHOAL_HOME/runs``): a path with a ``..`` segment, or one that resolves (symlinks included)
outside the root, is refused before anything is written. Remote URIs (``s3://``…) cannot be
confined by a local root; they pass through, ``..`` still refused.

A run builds its outputs in a hidden sibling, ``.<name>.staging``, named after the location
alone so that a rerun of the same command finds the stages that finished (Prefect's cache keys
on it). On a local disk, publishing renames the staging directory to ``.<name>.<run id>`` and
then atomically replaces the symlink ``<name>`` with one to it: a reader of ``<name>/…`` sees
the previous complete outputs or the new complete outputs, never a mix and never a half-written
file. An object store has no atomic rename of many objects: there the files are copied one by
one, ``summary.json`` removed first and written last, so its presence marks a complete set.

With ``SHOAL_STORAGE_URI`` set (cluster mode, ``infra.durable``) and no ``SHOAL_OUTPUT_ROOT``,
default and relative outputs go under ``<storage uri>/runs``, where every node reads them.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import fsspec
from fsspec.utils import get_protocol

from infra.settings import Settings, get_settings

STAGING_SUFFIX = ".staging"
COMPLETION_MARKER = "summary.json"


class OutputError(ValueError):
    """An output location refused before anything is written; the message names it."""


def output_root(settings: Settings | None = None) -> Path:
    """The directory every local output must lie under."""
    settings = settings or get_settings()
    return (settings.output_root or settings.runs_dir).expanduser().resolve()


def runs_uri(settings: Settings | None = None) -> str:
    """Return where default and relative outputs go: ``<storage uri>/runs`` or the root."""
    settings = settings or get_settings()
    if settings.storage_uri and settings.output_root is None:
        return f"{settings.durable_root}/runs"
    return str(output_root(settings))


def is_remote(uri: str) -> bool:
    """Tell whether ``uri`` lies outside the local file system (``s3://``, ``gs://``…)."""
    return get_protocol(uri) not in ("file", "local")


@dataclass(frozen=True)
class OutputLocation:
    """Where a run's outputs are published (``uri``) and where they are built (``staging``)."""

    uri: str

    @property
    def _parent_and_name(self) -> tuple[str, str]:
        parent, name = posixpath.split(self.uri.rstrip("/"))
        return parent, name

    @property
    def staging(self) -> str:
        """The hidden sibling where outputs are built before they are published."""
        parent, name = self._parent_and_name
        return posixpath.join(parent, f".{name}{STAGING_SUFFIX}")

    def published_path(self, staged: str) -> str:
        """Where a file built at ``staged`` (in the staging directory) is read once published."""
        return self.uri + staged[len(self.staging) :] if staged.startswith(self.staging) else staged

    def publish(self, run_id: str) -> None:
        """Make the staged outputs the location's contents in one step (see the module doc)."""
        if is_remote(self.uri):
            _publish_by_copy(self.staging, self.uri)
        else:
            _publish_by_symlink(Path(self.staging), Path(self.uri), run_id)

    @property
    def published(self) -> bool:
        """Some run's outputs have appeared here (a link on disk, ``summary.json`` in a store)."""
        if is_remote(self.uri):
            fs, path = fsspec.core.url_to_fs(self.uri)
            return bool(fs.exists(posixpath.join(path, COMPLETION_MARKER)))
        return os.path.lexists(self.uri)

    def check_publishable(self) -> None:
        """A real, non-empty directory at the location was not written by us: never replace it."""
        path = Path(self.uri)
        if is_remote(self.uri) or path.is_symlink() or not path.exists():
            return
        if not path.is_dir() or any(path.iterdir()):
            raise OutputError(
                f"output location {self.uri} already holds files Shoal did not publish; "
                "move them away or choose another --output"
            )


def resolve_output(output: str, settings: Settings | None = None) -> OutputLocation:
    """The user's ``--output`` as a location under the output root, or a clear refusal.

    A relative path is taken under the root, so ``--output 2026-11-26`` lands in
    ``<root>/2026-11-26``. The last component is not resolved: it is the symlink we publish.
    """
    text = output.strip()
    if not text:
        raise OutputError("output location is empty")
    if ".." in text.replace("\\", "/").split("/"):
        raise OutputError(f"output location {output!r} has a '..' segment; name it without one")
    if is_remote(text):
        if not urlpath_has_name(text):
            raise OutputError(f"output location {output!r} needs a folder below the bucket")
        return OutputLocation(text.rstrip("/"))
    runs = runs_uri(settings)
    if is_remote(runs) and not text.startswith(("/", "file://", "~")):
        return OutputLocation(posixpath.join(runs, text.rstrip("/").removeprefix("./")))
    root = output_root(settings)
    path = Path(text.removeprefix("file://")).expanduser()
    path = path if path.is_absolute() else root / path
    resolved = path.parent.resolve() / path.name
    if resolved.parent != root and root not in resolved.parent.parents:
        raise OutputError(
            f"output location {output!r} resolves to {resolved}, outside the output root {root}; "
            "choose a location under it or set SHOAL_OUTPUT_ROOT"
        )
    return OutputLocation(str(resolved))


def urlpath_has_name(uri: str) -> bool:
    """``s3://bucket/folder`` has a folder to publish into; ``s3://bucket`` has none."""
    _, path = fsspec.core.split_protocol(uri)
    return len([p for p in (path or "").split("/") if p]) >= 2


def _publish_by_symlink(staging: Path, location: Path, run_id: str) -> None:
    version = location.parent / f".{location.name}.{run_id}"
    staging.rename(version)
    if location.exists() and not location.is_symlink():
        location.rmdir()  # empty: check_publishable refused anything else
    link = location.parent / f".{location.name}.{run_id}.link"
    link.unlink(missing_ok=True)
    link.symlink_to(version.name)
    os.replace(link, location)  # the one atomic step readers can observe
    _fsync_directory(location.parent)
    # Earlier versions, and what a publish killed before its swap left behind.
    leftover = re.compile(rf"\.{re.escape(location.name)}\.[0-9a-f]{{32}}(\.link)?")
    for old in location.parent.iterdir():
        if old == version or not leftover.fullmatch(old.name):
            continue
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


def _publish_by_copy(staging: str, location: str) -> None:
    fs, staged = fsspec.core.url_to_fs(staging)
    _, target = fsspec.core.url_to_fs(location)
    files = sorted(fs.find(staged))
    marker = posixpath.join(target, COMPLETION_MARKER)
    if fs.exists(marker):
        fs.rm(marker)
    ordered = [f for f in files if posixpath.basename(f) != COMPLETION_MARKER]
    ordered += [f for f in files if posixpath.basename(f) == COMPLETION_MARKER]
    for source in ordered:
        fs.copy(source, posixpath.join(target, posixpath.relpath(source, staged)))
    fs.rm(staged, recursive=True)


def _fsync_directory(path: Path) -> None:
    """The rename survives a power cut only once its directory entry is on disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
