"""Fail fast, before any heavy work, when a configured server cannot be reached.

MLflow's client retries an unreachable server for minutes and Prefect's for longer; a scheduled
job should instead stop at once with the URI it could not reach.
"""

from __future__ import annotations

import urllib.error
import urllib.request

from infra.settings import Settings, get_settings


class EngineUnreachable(RuntimeError):
    """A configured engine did not answer; the message names it and its URI."""


def _probe(name: str, url: str, timeout_s: float) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            if response.status >= 500:
                raise EngineUnreachable(f"{name} at {url} answered HTTP {response.status}")
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        raise EngineUnreachable(f"{name} at {url} cannot be reached: {err}") from err


def check_engines(settings: Settings | None = None, timeout_s: float = 5.0) -> None:
    """Probe the servers named in settings; embedded engines need no probe."""
    settings = settings or get_settings()
    uri = settings.tracking_uri
    if uri.startswith(("http://", "https://")):
        _probe("MLflow tracking server", f"{uri.rstrip('/')}/health", timeout_s)
    if settings.prefect_api_url:
        _probe("Prefect API", f"{settings.prefect_api_url.rstrip('/')}/health", timeout_s)
