"""Credentials come from the environment: URI parameters with a password are refused."""

from __future__ import annotations

import pytest

from infra.credentials import CredentialInParameter, refuse_credentials, storage_options


def test_http_sources_authenticate_from_the_environment() -> None:
    assert storage_options("https://host/t.csv") == {"client_kwargs": {"trust_env": True}}
    assert storage_options("s3://lake/t") == storage_options("/data/t.csv") == {}


def test_a_password_is_refused_naming_the_parameter_not_the_password() -> None:
    refuse_credentials(events="https://analyst@host/e.parquet", transactions="/t.csv", output=None)
    with pytest.raises(CredentialInParameter) as err:
        refuse_credentials(events="/e.csv", output="s3://AKIA:se/cret+key@lake/out")
    message = str(err.value)
    assert message.startswith("output s3://***@lake/out carries a password")
    assert "se/cret" not in message and "netrc" in message and "AWS_*" in message
