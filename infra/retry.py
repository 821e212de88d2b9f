"""Retry I/O that failed for a passing reason; fail at once when retrying cannot help.

Object stores throttle and drop connections under load, and a scheduled run should not die of a
reset socket; a missing file, a refused permission or a file that breaks the data contract is the
same on every attempt, so it is raised on the first. Backoff is exponential with jitter (so many
readers hitting one throttled bucket spread out) via tenacity; every retry is logged on
``shoal.io``, which ``configure_environment`` forwards to Prefect's run logs.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from infra.redact import redact
from infra.settings import Settings, get_settings

T = TypeVar("T")

logger = logging.getLogger("shoal.io")

# Errnos a retry can outlive: busy or throttled servers (s3fs maps SlowDown/503 to EBUSY and
# 500 to EREMOTEIO), dropped connections and timeouts.
TRANSIENT_ERRNOS = frozenset(
    {
        errno.EAGAIN,
        errno.EBUSY,
        errno.EINTR,
        errno.EIO,
        errno.EREMOTEIO,
        errno.ETIMEDOUT,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.ECONNREFUSED,
        errno.EPIPE,
        errno.ENETDOWN,
        errno.ENETUNREACH,
        errno.ENETRESET,
        errno.EHOSTUNREACH,
    }
)

# Contract, format and path errors: the same bytes fail the same way on every attempt.
# (InputError and pyarrow's ArrowInvalid are ValueErrors.)
DETERMINISTIC = (
    FileNotFoundError,
    FileExistsError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
    ValueError,
    TypeError,
    KeyError,
)

# Error codes of S3-compatible stores (botocore ClientError) worth another attempt.
_THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "SlowDown",
        "RequestLimitExceeded",
        "RequestThrottled",
        "TooManyRequestsException",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServiceUnavailable",
    }
)


def _client_library_transient(err: BaseException) -> bool:
    """Connection-level errors of botocore and aiohttp, which are not ``OSError``s."""
    try:
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import HTTPClientError

        if isinstance(err, BotoConnectionError | HTTPClientError):
            return True
    except ImportError:
        pass
    try:
        from aiohttp import ClientConnectionError, ClientPayloadError

        if isinstance(err, ClientConnectionError | ClientPayloadError):
            return True
    except ImportError:
        pass
    return False


def _http_status(err: BaseException) -> int | None:
    """The HTTP status an error carries: aiohttp's ``.status`` or botocore's response metadata."""
    status = getattr(err, "status", None)
    if isinstance(status, int):
        return status
    response = getattr(err, "response", None)
    if isinstance(response, dict):
        code = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return code if isinstance(code, int) else None
    return None


def is_transient(err: BaseException) -> bool:
    """True for errors a later attempt may not meet; anything unrecognised is not retried."""
    if isinstance(err, DETERMINISTIC):
        return False
    if isinstance(err, ConnectionError | TimeoutError):
        return True
    if isinstance(err, OSError) and err.errno in TRANSIENT_ERRNOS:
        return True
    if _client_library_transient(err):
        return True
    response = getattr(err, "response", None)
    if isinstance(response, dict) and response.get("Error", {}).get("Code") in _THROTTLING_CODES:
        return True
    status = _http_status(err)
    return status is not None and (status == 429 or status >= 500)


def _sleep(seconds: float) -> None:
    """Indirection so tests can observe the backoff without waiting for it."""
    time.sleep(seconds)


def retry_io(what: str, call: Callable[[], T], settings: Settings | None = None) -> T:
    """``call()``, retried on transient errors with exponential backoff and jitter.

    ``what`` names the operation and its path in the retry log lines (credentials redacted).
    The last error is re-raised unchanged once attempts run out, so callers' handling of
    ``OSError`` and friends still applies.
    """
    settings = settings or get_settings()
    base = settings.io_retry_base_delay_s

    def log_retry(state: RetryCallState) -> None:
        err = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        logger.warning(
            "%s failed (attempt %d of %d: %s: %s); retrying in %.2f s",
            redact(what),
            state.attempt_number,
            settings.io_retry_attempts,
            type(err).__name__,
            redact(str(err)),
            delay,
        )

    retrying = Retrying(
        sleep=lambda seconds: _sleep(seconds),
        stop=stop_after_attempt(settings.io_retry_attempts),
        wait=wait_exponential_jitter(
            multiplier=base, jitter=base, max=settings.io_retry_max_delay_s
        ),
        retry=retry_if_exception(is_transient),
        before_sleep=log_retry,
        reraise=True,
    )
    return retrying(call)
