"""A remote in an S3 bucket prefix (AWS, MinIO, R2, Ceph, a local test server).

boto3 is imported here only, on the path that talks to S3. Credentials come
from boto3's usual chain (environment, profiles, instance roles); we never
store them. ``AWS_ENDPOINT_URL_S3`` is honoured by boto3 itself.

Every call is retried within bounds on HTTP 5xx, throttling and dropped or
refused connections, with jittered exponential back-off, and gives up after
``attempts`` tries or ``deadline`` seconds; each try has connect and read
timeouts, so an unreachable endpoint fails in bounded time.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from localfirst.errors import RemoteError

from .remotes import ObjectExists, ObjectInfo, ObjectMissing, PreconditionFailed, check_key

__all__ = ["S3Remote"]

T = TypeVar("T")

_RETRY_CODES = {
    "InternalError", "ServiceUnavailable", "SlowDown", "Throttling", "ThrottlingException",
    "RequestTimeout", "RequestTimeTooSkewed", "TooManyRequestsException", "503", "500", "502", "504",
}


def _timeout() -> float:
    try:
        return float(os.environ.get("LOCALFIRST_SYNC_TIMEOUT", "10"))
    except ValueError:
        return 10.0


class S3Remote:
    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        attempts: int = 5,
        deadline: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        client: Any = None,
    ) -> None:
        self.url = url
        rest = url.removeprefix("s3://")
        self.bucket, _, prefix = rest.partition("/")
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        self.attempts = attempts
        timeout = _timeout()
        self.deadline = deadline if deadline is not None else 3 * timeout
        self._sleep = sleep
        self.client = client if client is not None else self._make_client(endpoint_url, region, profile, timeout)

    @staticmethod
    def _make_client(endpoint_url: str | None, region: str | None, profile: str | None, timeout: float) -> Any:
        import boto3
        import botocore.exceptions
        from botocore.config import Config

        try:
            session = boto3.Session(profile_name=profile, region_name=region)
        except botocore.exceptions.ProfileNotFound as exc:
            raise RemoteError(f"AWS profile {profile!r} is not configured") from exc
        config = Config(
            connect_timeout=timeout, read_timeout=timeout,
            # Our own loop retries (it knows which calls are safe to repeat).
            retries={"total_max_attempts": 1},
        )
        try:
            return session.client("s3", endpoint_url=endpoint_url, config=config)
        except (ValueError, botocore.exceptions.BotoCoreError) as exc:
            # A malformed endpoint (ours or AWS_ENDPOINT_URL_S3) or region.
            where = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or "S3"
            raise RemoteError(f"cannot use {where} (region {region or 'default'}): {exc}") from exc

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        import botocore.exceptions as bx

        start = time.monotonic()
        delay = 0.05
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except bx.ClientError as exc:
                error = exc.response.get("Error", {})
                code = str(error.get("Code", ""))
                status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
                if code not in _RETRY_CODES and status < 500 and status != 429:
                    raise self._translate(what, code, status, exc) from exc
                failure: Exception = exc
                message = f"S3 answered {code or status}"
            except bx.NoCredentialsError as exc:
                raise RemoteError(
                    f"no AWS credentials found for {self.url}: set AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY, or use --profile"
                ) from exc
            except (bx.ConnectionError, bx.HTTPClientError) as exc:
                failure = exc
                message = f"cannot reach {self.endpoint_url or 'S3'}: {exc}"
            if attempt == self.attempts or time.monotonic() - start + delay > self.deadline:
                raise RemoteError(f"{what} failed after {attempt} attempts: {message}") from failure
            self._sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")

    def _translate(self, what: str, code: str, status: int, exc: Exception) -> RemoteError:
        if code in ("NoSuchKey", "404", "NotFound"):
            return ObjectMissing(f"{what}: no such object")
        if code == "NoSuchBucket":
            return RemoteError(f"bucket {self.bucket!r} does not exist")
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
            return RemoteError(f"{what}: access denied by S3 ({code}); check the credentials and bucket policy")
        return RemoteError(f"{what}: S3 answered {code or status}")

    def list(self, prefix: str) -> dict[str, str]:
        full = self._key(prefix.rstrip("/")) + "/"
        out: dict[str, str] = {}
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full, "Delimiter": "/"}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call(f"list {self.url}/{prefix}", partial(self.client.list_objects_v2, **kwargs))
            for item in page.get("Contents", []):
                out[prefix + item["Key"][len(full):]] = str(item["ETag"])
            token = page.get("NextContinuationToken")
            if not token:
                return out

    def get(self, key: str) -> bytes:
        def fetch() -> bytes:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
            return bytes(body.read())

        return self._call(f"get {key}", fetch)

    def head(self, key: str) -> ObjectInfo:
        meta = self._call(f"head {key}", lambda: self.client.head_object(Bucket=self.bucket, Key=self._key(key)))
        return ObjectInfo(str(meta["ETag"]), meta.get("Metadata", {}).get("sha256"))

    def put(self, key: str, data: bytes, *, sha256: str, create_only: bool, if_match: str | None = None) -> str:
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket, "Key": self._key(key), "Body": data, "Metadata": {"sha256": sha256},
        }
        if create_only:
            kwargs["IfNoneMatch"] = "*"
        elif if_match is not None:
            kwargs["IfMatch"] = if_match
        try:
            answer = self._call(f"put {key}", lambda: self.client.put_object(**kwargs))
        except RemoteError as exc:
            cause = exc.__cause__
            response = getattr(cause, "response", None) or {}
            code = str(response.get("Error", {}).get("Code", ""))
            if code in ("PreconditionFailed", "ConditionalRequestConflict"):
                if create_only:
                    raise ObjectExists(f"{key} already exists in {self.url}") from cause
                raise PreconditionFailed(f"{key} in {self.url} changed since it was read") from cause
            raise
        return str(answer["ETag"])
