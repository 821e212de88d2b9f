"""Keep credentials out of everything Shoal records: MLflow params, logs, summaries, reports.

Credentials belong in the environment (``AWS_*``, ``MLFLOW_TRACKING_PASSWORD``…), but a URI can
still carry one (``s3://key:secret@bucket``, ``https://user:pass@host``, a presigned
``?X-Amz-Signature=``); whatever Shoal writes down goes through :func:`redact` first, and the
log redaction installed by :func:`install_log_redaction` covers Prefect's and our log lines.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import Any

MASK = "***"

# ``scheme://user@`` or ``scheme://user:password@``; a password may hold unescaped ``/`` and
# ``+`` (AWS secret keys do), so after a ``:`` anything but ``@`` and blanks belongs to it.
_USERINFO = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)[^/@\s?#:\"'<>]+(?P<password>:[^@\s\"'<>]*)?@"
)
# What looks like a password may be a port followed by a path holding an ``@``.
_PORT_AND_PATH = re.compile(r":\d+/.*")
# Query parameters that carry secrets: tokens, keys, passwords, AWS/GCS/Azure signatures.
_SECRET_QUERY = re.compile(
    r"(?P<name>[?&;](?:x-(?:amz|goog)-)?(?:signature|credential|security-token|token"
    r"|access_token|id_token|refresh_token|auth_token|api_key|apikey|key|secret|client_secret"
    r"|password|passwd|pwd|sig|awsaccesskeyid)=)[^&;#\s\"'<>]*",
    re.IGNORECASE,
)
# Environment variables whose values are credentials, by name. A webhook URL is one too (a
# Slack webhook's path is its key), and so is PagerDuty's routing key.
_SECRET_ENV = re.compile(
    r"SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|ACCESS_KEY|API_KEY|AUTH_STRING|WEBHOOK|ROUTING_KEY"
)
_MIN_SECRET_LENGTH = 6  # shorter values would mask ordinary words


def _secret_env_values() -> list[str]:
    values = {
        value
        for name, value in os.environ.items()
        if _SECRET_ENV.search(name.upper()) and len(value) >= _MIN_SECRET_LENGTH
    }
    return sorted(values, key=len, reverse=True)  # a longer secret may contain a shorter one


def redact(text: str) -> str:
    """``text`` with URI credentials, secret query values and secret env values masked."""
    text = _USERINFO.sub(rf"\g<scheme>{MASK}@", text)
    text = _SECRET_QUERY.sub(rf"\g<name>{MASK}", text)
    for value in _secret_env_values():
        text = text.replace(value, MASK)
    return text


def userinfo_password(text: str) -> bool:
    """Whether a URI in ``text`` carries a password in its user-info (``scheme://u:p@host``)."""
    for match in _USERINFO.finditer(text):
        password = match.group("password") or ":"
        if len(password) > 1 and not _PORT_AND_PATH.fullmatch(password):
            return True
    return False


def redact_value(value: Any) -> Any:
    """:func:`redact` applied to every string inside JSON-like data (dicts, lists, tuples)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {redact_value(k): redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


class _Redacting(logging.Filter):
    """Rewrites a record's message and traceback text before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: logging reports it itself when it formats
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_FILTER = _Redacting()


def install_log_redaction() -> None:
    """Redact every log record at creation, whichever logger and handler (Prefect's too) gets it.

    A record factory rather than a handler filter, because Prefect adds its API and console
    handlers itself and records propagate past logger-level filters. Idempotent.
    """
    factory = logging.getLogRecordFactory()
    if getattr(factory, "shoal_redacting", False):
        return

    def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        _FILTER.filter(record)
        return record

    redacting_factory.shoal_redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(redacting_factory)
