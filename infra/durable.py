"""Durable state on shared storage (cluster mode), chosen by ``SHOAL_STORAGE_URI`` alone.

With ``SHOAL_STORAGE_URI=s3://bucket/shoal`` everything a run leaves for a later run lives there
instead of under ``SHOAL_HOME``, so any node or Prefect worker sees what another left: default
outputs (``<uri>/runs``, ``infra.storage``), Ray Train and Tune runs (``<uri>/ray_results``),
the cached stages' Prefect results (``<uri>/prefect-results``) and the locks (``<uri>/locks``,
``infra.locks``). A non-AWS S3 endpoint comes from the standard ``AWS_ENDPOINT_URL`` (or
``AWS_ENDPOINT_URL_S3``), which s3fs and botocore read and which is handed to Ray's pyarrow
filesystem here; credentials come from each machine's own ``AWS_*`` variables or profile.
Unset, each of these is the embedded default under ``SHOAL_HOME``.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from typing import Any

import pyarrow.fs
from fsspec.utils import get_protocol

from infra.settings import Settings, get_settings
from infra.storage import is_remote


def ray_storage(settings: Settings | None = None) -> tuple[str, pyarrow.fs.FileSystem | None]:
    """``RunConfig(storage_path, storage_filesystem)`` for Ray Train and Tune.

    S3 at a custom endpoint gets an explicit pyarrow filesystem (the path then without its
    scheme, as Ray wants it), because pyarrow alone does not read ``AWS_ENDPOINT_URL`` in every
    version. Credentials stay unresolved in it, so each node reads its own from its environment.
    """
    settings = settings or get_settings()
    uri = settings.ray_storage
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if get_protocol(uri) not in ("s3", "s3a") or not endpoint:
        return uri, None
    scheme, _, host = endpoint.rpartition("://")
    filesystem = pyarrow.fs.S3FileSystem(
        endpoint_override=host.rstrip("/"),
        scheme=scheme or "https",
        region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
    )
    return uri.split("://", 1)[1], filesystem


def durable_uri(path: str, settings: Settings | None = None) -> str:
    """Turn a path Ray returned on the storage filesystem into a URI fsspec opens."""
    settings = settings or get_settings()
    if not is_remote(settings.durable_root) or "://" in path:
        return path
    return f"{get_protocol(settings.durable_root)}://{path}"


def result_storage(settings: Settings | None = None) -> Any | None:
    """Prefect result storage for the cached stages: shared storage, or Prefect's default.

    The default is ``$PREFECT_HOME/storage``, placed under ``SHOAL_HOME`` by
    ``configure_environment``. Prefect 3 looks a cache key up in the result storage itself, so
    a worker on another machine, with its own home, finds what any worker stored there.
    """
    settings = settings or get_settings()
    if not settings.storage_uri:
        return None
    return _saved_result_storage(f"{settings.durable_root}/prefect-results")


@lru_cache(maxsize=4)
def _saved_result_storage(basepath: str) -> Any:
    """Prefect refuses an unsaved block as result storage: saved once per process."""
    from prefect.filesystems import RemoteFileSystem

    block = RemoteFileSystem(basepath=basepath)
    digest = hashlib.sha256(basepath.encode()).hexdigest()[:12]
    block.save(f"shoal-results-{digest}", overwrite=True)
    return block
