"""Dask: the local threaded scheduler by default, a distributed scheduler when one is named.

A distributed client already made the default in this process (a notebook's, a benchmark's
``LocalCluster``) is used as it is rather than replaced by threads.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dask

from infra.settings import Settings, get_settings


@contextmanager
def dask_scheduler(settings: Settings | None = None) -> Iterator[None]:
    """Run the enclosed Dask work on the configured scheduler, else on local threads.

    A configured ``SHOAL_DASK_SCHEDULER`` gets a client for the duration; an already active
    distributed client is kept; otherwise Dask's threaded scheduler runs the graph here.
    """
    settings = settings or get_settings()
    if settings.dask_scheduler:
        from distributed import Client

        with Client(settings.dask_scheduler):  # becomes the default scheduler
            yield
    elif dask.config.get("scheduler", None) == "dask.distributed":
        yield
    else:
        with dask.config.set(scheduler="threads"):
            yield
