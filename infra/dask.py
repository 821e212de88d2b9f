"""Dask: the local threaded scheduler by default, a distributed scheduler when one is named."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dask

from infra.settings import Settings, get_settings


@contextmanager
def dask_scheduler(settings: Settings | None = None) -> Iterator[None]:
    settings = settings or get_settings()
    if settings.dask_scheduler:
        from distributed import Client

        with Client(settings.dask_scheduler):  # becomes the default scheduler
            yield
    else:
        with dask.config.set(scheduler="threads"):
            yield
