"""Fail fast, before any heavy work, when a configured server cannot be reached.

MLflow's client retries an unreachable server for minutes and Prefect's for longer; a scheduled
job should instead stop at once with the URI it could not reach.
"""

from __future__ import annotations

import base64
import urllib.error
import urllib.parse
import urllib.request

from infra.redact import redact
from infra.settings import Settings, get_settings


class EngineUnreachable(RuntimeError):
    """A configured engine did not answer; the message names it and its URI."""


def _request(url: str) -> urllib.request.Request:
    """urllib rejects ``user:password@`` in a URL; send them as basic auth, as MLflow does."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return urllib.request.Request(url)
    netloc = parts.netloc.rsplit("@", 1)[1]
    request = urllib.request.Request(urllib.parse.urlunsplit(parts._replace(netloc=netloc)))
    user = urllib.parse.unquote(parts.username)
    password = urllib.parse.unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    return request


def _probe(name: str, url: str, timeout_s: float) -> None:
    shown = redact(url)  # a URI from the environment may carry a password
    try:
        with urllib.request.urlopen(_request(url), timeout=timeout_s) as response:
            if response.status >= 500:
                raise EngineUnreachable(f"{name} at {shown} answered HTTP {response.status}")
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        raise EngineUnreachable(f"{name} at {shown} cannot be reached: {err}") from err


def check_engines(settings: Settings | None = None, timeout_s: float = 5.0) -> None:
    """Probe the servers named in settings; embedded engines need no probe."""
    settings = settings or get_settings()
    uri = settings.tracking_uri
    if uri.startswith(("http://", "https://")):
        _probe("MLflow tracking server", f"{uri.rstrip('/')}/health", timeout_s)
    if settings.prefect_api_url:
        _probe("Prefect API", f"{settings.prefect_api_url.rstrip('/')}/health", timeout_s)
