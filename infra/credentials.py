"""Credentials come from the environment, never from a flow's parameters.

Prefect stores a flow run's parameters as given and shows them in its UI, so a password inside
a URI parameter would be kept in the clear whatever Shoal redacts. Flows therefore refuse such
a parameter before any work, and the readers open sources with environment authentication:
S3 through ``AWS_*`` variables or a profile (s3fs/botocore), HTTP(S) through a netrc file
(``~/.netrc``, or the file ``$NETRC`` names), which aiohttp reads when the session trusts the
environment (``aiohttp.ClientSession(trust_env=True)``; it also takes ``HTTP(S)_PROXY``).
"""

from __future__ import annotations

from typing import Any

from fsspec.utils import get_protocol

from infra.redact import redact, redact_value, userinfo_password

WHERE_CREDENTIALS_GO = (
    "credentials come from the environment: AWS_* variables or a profile for s3://, "
    "a netrc file (~/.netrc or $NETRC) for http(s)://"
)


class CredentialInParameter(ValueError):
    """A URI parameter carries a password; the message names the parameter, never the password."""


def storage_options(uri: str) -> dict[str, Any]:
    """fsspec options to open ``uri`` with: HTTP(S) authenticates from netrc (and proxies)."""
    if get_protocol(uri) in ("http", "https"):
        return {"client_kwargs": {"trust_env": True}}
    return {}


def refuse_credentials(**uris: str | None) -> None:
    """Raise naming the first URI parameter with a password in it, before any work.

    Prefect stored the parameters when it created the flow run: the ones of a refused run are
    overwritten with their redacted form, so the password does not stay in Prefect either.
    """
    offending = [name for name, uri in uris.items() if uri and userinfo_password(uri)]
    if not offending:
        return
    _redact_stored_parameters()
    name = offending[0]
    raise CredentialInParameter(
        f"{name} {redact(str(uris[name]))} carries a password; remove it from the URI, "
        f"{WHERE_CREDENTIALS_GO}"
    )


def _redact_stored_parameters() -> None:
    from prefect.client.orchestration import get_client  # the readers need none of Prefect
    from prefect.runtime import flow_run

    run_id = flow_run.get_id()
    if run_id is None:  # called outside a flow run: Prefect stored nothing
        return
    with get_client(sync_client=True) as client:
        stored = client.read_flow_run(run_id).parameters
        client.update_flow_run(run_id, parameters=redact_value(stored))
