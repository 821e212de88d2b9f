"""Ray: a local instance started on demand, or the cluster named by ``RAY_ADDRESS``."""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

import ray

from infra.settings import Settings, get_settings

LOOPBACK = "127.0.0.1"

logger = logging.getLogger("shoal.ray")


def ensure_ray(settings: Settings | None = None) -> None:
    """Connect once per process; a local Ray gets the machine's CPUs and no dashboard.

    A local Ray is reachable from this machine only: its node address is the loopback one
    (``infra.settings`` arranges it before Ray is imported) and a dashboard, if ever enabled,
    binds to 127.0.0.1.
    """
    if ray.is_initialized():
        return
    settings = settings or get_settings()
    ray.init(
        # "local", not None: None joins any Ray already started on this machine (another
        # user's `ray start`), whose lifetime and resources are not ours.
        address=settings.ray_address or "local",
        include_dashboard=False,
        dashboard_host=LOOPBACK,
        log_to_driver=False,
        configure_logging=False,
        ignore_reinit_error=True,
        runtime_env={"env_vars": train_env()},
    )
    node_ip = ray.util.get_node_ip_address()
    if not on_cluster(settings) and not ipaddress.ip_address(node_ip).is_loopback:
        logger.warning(
            "local Ray listens on %s, not only on loopback: Ray was imported before "
            "infra.settings set RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0",
            node_ip,
        )


def train_env() -> dict[str, str]:
    """Environment of this job's Ray workers, Ray Train's controller among them.

    The controller polls its workers every ``RAY_TRAIN_HEALTH_CHECK_INTERVAL_S`` (2 s by
    default): it sees a report, and the end of a run, only at a poll. A fit of a loop that does
    nothing took 8.9 s at 0.5 s and 10.3 s at 2 s (benchmarks/README.md, "Whole flow at
    scale"), and a worker that dies within a poll of its report takes that checkpoint with it.
    A value set in the environment wins.
    """
    return {
        "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": os.environ.get(
            "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5"
        )
    }


def on_cluster(settings: Settings | None = None) -> bool:
    """Tell whether a Ray cluster is configured, where distributing small work pays off."""
    settings = settings or get_settings()
    return bool(settings.ray_address) and settings.ray_address != "local"


@ray.remote
def _apply(fn: Callable[[Any], Any], item: Any) -> Any:
    return fn(item)


def ray_map(fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
    """``map(fn, items)`` as one Ray task per item, the results in the items' order.

    ``fn`` travels once: it goes into the object store with the data it holds (pHDBSCAN's
    rows and cells, ``ops.phdbscan._knn_graph.CellChunkSearch``) and each task reads it from
    there, its arrays without a copy on the node that holds them.

    Parameters
    ----------
    fn : callable
        Picklable; called once per item on whichever node Ray places the task.
    items : iterable
        The tasks' arguments, each small.

    Returns
    -------
    list
        ``[fn(item) for item in items]``.
    """
    ensure_ray()
    fn_ref = ray.put(fn)
    return ray.get([_apply.remote(fn_ref, item) for item in items])
