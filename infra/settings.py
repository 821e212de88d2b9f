"""Where each engine lives: embedded defaults under ``.shoal/``, overridden by environment alone.

A fresh machine needs nothing running (SQLite MLflow, Prefect's ephemeral API, a local Ray and
Dask's threaded scheduler); pointing the same code at real servers is a matter of setting
``MLFLOW_TRACKING_URI``, ``PREFECT_API_URL``, ``RAY_ADDRESS`` or ``SHOAL_DASK_SCHEDULER``.
``SHOAL_STORAGE_URI`` (``s3://bucket/shoal``) moves everything durable a run leaves, its
checkpoints, cached stage results, outputs and locks, off ``SHOAL_HOME`` onto storage every
node reaches (``infra.storage``).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from infra.prefect_schema import seed_home
from infra.redact import install_log_redaction

# A local Ray's servers (GCS, raylet, workers) listen on every interface unless the node's
# address is the loopback one, which Ray picks only with this switch (named for macOS and
# Windows, read when Ray is imported: so here, before any of our modules imports it).
if os.environ.get("RAY_ADDRESS", "local") == "local":
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


class Settings(BaseSettings):
    """Engine locations; each field names the environment variable that overrides it."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    home: Path = Field(default=Path(".shoal"), validation_alias="SHOAL_HOME")
    mlflow_tracking_uri: str | None = Field(default=None, validation_alias="MLFLOW_TRACKING_URI")
    mlflow_experiment: str = Field(default="shoal", validation_alias="SHOAL_EXPERIMENT")
    registered_model: str = Field(default="shoal-encoder", validation_alias="SHOAL_MODEL_NAME")
    # Local outputs must lie under this directory (default: runs/ under SHOAL_HOME).
    output_root: Path | None = Field(default=None, validation_alias="SHOAL_OUTPUT_ROOT")
    # Shared storage for durable state (cluster mode); unset, it all stays under ``home``.
    storage_uri: str | None = Field(default=None, validation_alias="SHOAL_STORAGE_URI")
    # On a Ray cluster without GPUs, the cluster stage runs on a node offering this resource.
    cluster_resource: str = Field(default="accelerator", validation_alias="SHOAL_CLUSTER_RESOURCE")
    # The cluster stage's CPU kNN graph as parallel Ray tasks, one per chunk of cells: pays off
    # on a cluster's many cores; on one machine the fit's own thread pool uses every core.
    cluster_knn_tasks: bool = Field(default=False, validation_alias="SHOAL_CLUSTER_KNN_TASKS")
    # Locks on shared storage expire this long after their holder stops renewing them.
    lock_lease_s: float = Field(default=60.0, gt=0, validation_alias="SHOAL_LOCK_LEASE_S")
    ray_address: str | None = Field(default=None, validation_alias="RAY_ADDRESS")
    prefect_api_url: str | None = Field(default=None, validation_alias="PREFECT_API_URL")
    # An Apprise URL, or a Slack, PagerDuty or generic web address (infra.notifications).
    alert_webhook: str | None = Field(default=None, validation_alias="SHOAL_ALERT_WEBHOOK")
    alert_routing_key: str | None = Field(default=None, validation_alias="SHOAL_ALERT_ROUTING_KEY")
    dask_scheduler: str | None = Field(
        default=None,
        validation_alias=AliasChoices("SHOAL_DASK_SCHEDULER", "DASK_SCHEDULER_ADDRESS"),
    )
    # Transient I/O errors (resets, timeouts, throttling) are retried this many times in all,
    # waiting base * 2^n plus up to base of jitter, at most max, between attempts.
    io_retry_attempts: int = Field(default=4, ge=1, validation_alias="SHOAL_IO_RETRY_ATTEMPTS")
    io_retry_base_delay_s: float = Field(
        default=0.5, ge=0, validation_alias="SHOAL_IO_RETRY_BASE_DELAY_S"
    )
    io_retry_max_delay_s: float = Field(
        default=10.0, ge=0, validation_alias="SHOAL_IO_RETRY_MAX_DELAY_S"
    )

    @property
    def root(self) -> Path:
        """Shoal's home, expanded and absolute."""
        return self.home.expanduser().resolve()

    @property
    def tracking_uri(self) -> str:
        """The MLflow server, or the embedded SQLite store under the home."""
        return self.mlflow_tracking_uri or f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def artifact_root(self) -> str:
        """Only used when Shoal creates the experiment on its embedded SQLite store."""
        return (self.root / "mlartifacts").as_uri()

    @property
    def runs_dir(self) -> Path:
        """Where runs write by default on the embedded setup."""
        return self.root / "runs"

    @property
    def durable_root(self) -> str:
        """Where durable state lives: the storage URI, or ``home`` when none is set."""
        return self.storage_uri.rstrip("/") if self.storage_uri else str(self.root)

    @property
    def ray_storage(self) -> str:
        """Ray Train and Tune's ``storage_path``: under the durable root."""
        return f"{self.durable_root}/ray_results"

    @property
    def prefect_home(self) -> Path:
        """Prefect's home (its ephemeral API's database) under Shoal's home."""
        return self.root / "prefect"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Read the settings from the environment once per process."""
    return Settings()


def configure_environment(settings: Settings | None = None) -> Settings:
    """Point Prefect at ``.shoal/prefect`` before it is imported, unless the user chose a home.

    Prefect reads ``PREFECT_HOME`` once at import, so the CLI calls this first. A new home
    starts from the migrated schema (`infra.prefect_schema`).
    """
    settings = settings or get_settings()
    settings.root.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(settings.prefect_home))
    # Ray's usage-stats prompt and Prefect's telemetry reach outside this machine.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # OpenMP threads that spin while waiting starve each other when Ray workers, Dask and
    # FAISS share a few cores: measured 3-7x slower training on 2 cores without this.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # The ephemeral API is a subprocess; on a busy 2-core machine it needs more than 20 s.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    # Retry warnings (``shoal.io``) belong in the flow run's logs, beside Prefect's own.
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "shoal")
    seed_home(Path(os.environ["PREFECT_HOME"]))
    install_log_redaction()
    return settings
