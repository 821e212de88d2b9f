"""Ray: a local instance started on demand, or the cluster named by ``RAY_ADDRESS``."""

from __future__ import annotations

import ray

from infra.settings import Settings, get_settings


def ensure_ray(settings: Settings | None = None) -> None:
    """Connect once per process; a local Ray gets the machine's CPUs and no dashboard."""
    if ray.is_initialized():
        return
    settings = settings or get_settings()
    ray.init(
        address=settings.ray_address,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        ignore_reinit_error=True,
    )


def on_cluster(settings: Settings | None = None) -> bool:
    """True when a Ray cluster is configured, where distributing small work pays off."""
    settings = settings or get_settings()
    return bool(settings.ray_address) and settings.ray_address != "local"
