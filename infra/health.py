"""Fail fast, before any heavy work, when a configured server cannot be reached or refuses us.

MLflow's client retries an unreachable server for minutes and Prefect's for longer; a scheduled
job should instead stop at once with the URI it could not reach. Each probe sends the
credentials the engine's own client would send, first to the server's ``/health`` (which both
servers answer without credentials) and then to one route that needs them: a server that
refuses the credentials is a different fault, with a different fix, from one that is down.
"""

from __future__ import annotations

import base64
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping

from infra.redact import redact
from infra.settings import Settings, get_settings

# Statuses by which a server says "not with these credentials".
_REFUSED = (401, 403)


class EngineUnreachable(RuntimeError):
    """A configured engine did not answer; the message names it and its URI."""


class CredentialsRefused(EngineUnreachable):
    """A configured engine answered, but refused the credentials sent (HTTP 401 or 403)."""


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _request(url: str, headers: Mapping[str, str]) -> urllib.request.Request:
    """Build the request; ``user:password@`` in the URL goes as basic auth, as MLflow sends it.

    urllib rejects user-info in a URL.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return urllib.request.Request(url, headers=dict(headers))
    netloc = parts.netloc.rsplit("@", 1)[1]
    request = urllib.request.Request(urllib.parse.urlunsplit(parts._replace(netloc=netloc)))
    user = urllib.parse.unquote(parts.username)
    request.add_header("Authorization", _basic(user, urllib.parse.unquote(parts.password or "")))
    return request


def mlflow_headers() -> dict[str, str]:
    """Return what MLflow's REST client sends: a bearer token, else basic auth, from the env."""
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        return {"Authorization": f"Bearer {token}"}
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if user:
        return {"Authorization": _basic(user, os.environ.get("MLFLOW_TRACKING_PASSWORD", ""))}
    return {}


def prefect_headers() -> dict[str, str]:
    """Return what Prefect's client sends: ``PREFECT_API_AUTH_STRING``, else ``PREFECT_API_KEY``.

    Read through Prefect's settings, so a key stored in the active Prefect profile counts too.
    """
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_KEY

    auth_string = PREFECT_API_AUTH_STRING.value()
    if auth_string:
        return {"Authorization": "Basic " + base64.b64encode(auth_string.encode()).decode()}
    key = PREFECT_API_KEY.value()
    return {"Authorization": f"Bearer {key}"} if key else {}


def _probe(name: str, url: str, headers: Mapping[str, str], hint: str, timeout_s: float) -> None:
    """Raise unless ``url`` answers with neither a refusal nor a server error."""
    shown = redact(url)  # a URI from the environment may carry a password
    try:
        with urllib.request.urlopen(_request(url, headers), timeout=timeout_s) as response:
            status = int(response.status)
    except urllib.error.HTTPError as err:  # urllib raises on every 4xx and 5xx
        status = err.code
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        raise EngineUnreachable(f"{name} at {shown} cannot be reached: {err}") from err
    if status in _REFUSED:
        raise CredentialsRefused(
            f"{name} at {shown} refused the credentials (HTTP {status}); {hint}"
        )
    if status >= 500:
        raise EngineUnreachable(f"{name} at {shown} answered HTTP {status}")


def check_engines(settings: Settings | None = None, timeout_s: float = 20.0) -> None:
    """Probe the servers named in settings; embedded engines need no probe."""
    settings = settings or get_settings()
    uri = settings.tracking_uri.rstrip("/")
    if uri.startswith(("http://", "https://")):
        name, headers = "MLflow tracking server", mlflow_headers()
        hint = "check MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/PASSWORD"
        experiment = urllib.parse.quote(settings.mlflow_experiment)
        _probe(name, f"{uri}/health", headers, hint, timeout_s)
        # Answers 200 or 404 to a client it lets in.
        route = f"{uri}/api/2.0/mlflow/experiments/get-by-name?experiment_name={experiment}"
        _probe(name, route, headers, hint, timeout_s)
    if settings.prefect_api_url:
        api, headers = settings.prefect_api_url.rstrip("/"), prefect_headers()
        hint = "check PREFECT_API_KEY or PREFECT_API_AUTH_STRING"
        _probe("Prefect API", f"{api}/health", headers, hint, timeout_s)
        _probe("Prefect API", f"{api}/admin/version", headers, hint, timeout_s)
