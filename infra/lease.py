"""A lock held across machines: one object in S3, created only if absent, kept alive by renewal.

Taking the lock is a ``PutObject`` with ``If-None-Match: *``: of any number of writers on any
machines, S3 lets exactly one create the object and answers the others ``412 Precondition
Failed``. The object holds who took it and until when (``expires``, the lease). The holder
renews it every third of the lease with ``If-Match`` on the ETag it wrote, so a renewal cannot
overwrite someone else's lock. A holder that dies, SIGKILL or a lost machine included, stops
renewing: once its lease has run out, the next taker replaces the object, again with ``If-Match``
on the ETag it read, so two takers of one expired lease cannot both win. Releasing deletes the
object if it is still ours. Expiry compares the lease against the reader's clock: machines'
clocks must agree to well within the lease (``SHOAL_LOCK_LEASE_S``, default 60 s).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from botocore.exceptions import ClientError
from fsspec.core import split_protocol

logger = logging.getLogger("shoal.locks")


class LeaseHeld(RuntimeError):
    """Someone else holds the lease; ``info`` is what they wrote (empty when unreadable)."""

    def __init__(self, info: dict[str, Any]) -> None:
        super().__init__(info)
        self.info = info


def _precondition_failed(err: ClientError) -> bool:
    return err.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412")


def _s3_client() -> Any:
    """Make a botocore client configured like s3fs: region, credentials, endpoint from AWS_*."""
    import botocore.session

    return botocore.session.get_session().create_client("s3")


class ObjectLease:
    """The lease at ``uri`` (``s3://bucket/key``): ``acquire``, ``update``, ``release``."""

    def __init__(self, uri: str, lease_s: float) -> None:
        _, path = split_protocol(uri)
        self.bucket, _, self.key = (path or "").partition("/")
        self.lease_s = lease_s
        self.lost = False
        self._client = _s3_client()
        self._etag: str | None = None
        self._info: dict[str, Any] = {}
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def acquire(self, info: dict[str, Any]) -> None:
        """Take the lease, or raise ``LeaseHeld`` naming the live holder."""
        self._info = dict(info)
        try:
            self._etag = self._put(IfNoneMatch="*")
        except ClientError as err:
            if not _precondition_failed(err):
                raise
            self._take_expired()
        self._renewer = threading.Thread(target=self._renew, name="shoal-lease", daemon=True)
        self._renewer.start()

    def update(self, info: dict[str, Any]) -> None:
        """Rewrite the holder's description (its MLflow run, once known) under the lease."""
        with self._guard:
            self._info = dict(info)
            self._etag = self._put(IfMatch=self._etag)

    def release(self) -> None:
        """Stop renewing and delete the lock object, unless someone took it over."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        with self._guard:
            try:
                self._client.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=self._etag)
            except ClientError as err:
                if not _precondition_failed(err):
                    raise
                logger.warning("lock %s was taken over before its release", self.key)

    def _take_expired(self) -> None:
        try:
            found = self._client.get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as err:  # released meanwhile: try once more from the start
            if err.response.get("Error", {}).get("Code") != "NoSuchKey":
                raise
            self._etag = self._conditional(IfNoneMatch="*")
            return
        try:
            held = json.loads(found["Body"].read())
        except ValueError:
            held = {}
        if float(held.get("expires", 0)) > time.time():
            raise LeaseHeld(held)
        logger.warning("lock %s: the lease of %s expired; taking it over", self.key, held)
        self._etag = self._conditional(IfMatch=found["ETag"])

    def _conditional(self, **condition: str) -> str:
        """Put under a condition; losing to a concurrent taker means they hold the lock."""
        try:
            return self._put(**condition)
        except ClientError as err:
            if _precondition_failed(err):
                raise LeaseHeld({}) from None
            raise

    def _put(self, **condition: str | None) -> str:
        body = json.dumps({**self._info, "expires": time.time() + self.lease_s}).encode()
        answer = self._client.put_object(Bucket=self.bucket, Key=self.key, Body=body, **condition)
        return str(answer["ETag"])

    def _renew(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            with self._guard:
                try:
                    self._etag = self._put(IfMatch=self._etag)
                except ClientError as err:
                    if _precondition_failed(err):
                        self.lost = True
                        logger.error("lock %s was taken over: no longer held", self.key)
                        return
                    logger.warning("lock %s: renewal failed (%s); retrying", self.key, err)
