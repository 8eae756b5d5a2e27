"""A remote in an S3 bucket prefix (AWS, MinIO, R2, Ceph, a local test server).

boto3 is imported here only, on the path that talks to S3. Credentials come
from boto3's usual chain (environment, profiles, instance roles); we never
store them. ``AWS_ENDPOINT_URL_S3`` is honoured by boto3 itself.

botocore retries each call itself ("standard" mode: HTTP 5xx, throttling,
timeouts and dropped connections, with jittered exponential back-off), at
most ``attempts`` tries in all. Each try has connect and read timeouts of
``LOCALFIRST_SYNC_TIMEOUT`` seconds (default 10), so an endpoint that never
answers fails in about ``attempts`` times that, plus seconds of back-off.
Repeating a call is safe: a create-only or compare-and-swap put that landed
before its answer was lost comes back as ObjectExists or PreconditionFailed,
which the push resolves by reading what is there.

Answers are checked against what S3 promises before they are used, so a web
page from a captive portal or a proxy is a RemoteError, never a KeyError.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any, TypeVar

from localfirst.errors import RemoteError

from .remotes import (
    ObjectExists,
    ObjectInfo,
    ObjectMissing,
    ObjectTooLarge,
    PreconditionFailed,
    RemoteSignal,
    check_key,
)

__all__ = ["S3Remote"]

T = TypeVar("T")
Conflict = Callable[[str], "RemoteSignal | None"]

_MISSING = {"NoSuchKey", "404", "NotFound"}
_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"}
# A conditional put that lost: to another writer, or to an earlier try of its own.
_CONFLICT = {"PreconditionFailed", "ConditionalRequestConflict"}
_CHUNK = 1 << 16


def _timeout() -> float:
    try:
        return float(os.environ.get("LOCALFIRST_SYNC_TIMEOUT", "10"))
    except ValueError:
        return 10.0


def _is_web_page(answer: Mapping[str, Any]) -> bool:
    headers = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    return str(headers.get("content-type", "")).lower().startswith("text/html")


class S3Remote:
    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        attempts: int = 3,
        client: Any = None,
    ) -> None:
        self.url = url
        rest = url.removeprefix("s3://")
        self.bucket, _, prefix = rest.partition("/")
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        self.attempts = attempts
        self.client = client if client is not None else self._make_client(endpoint_url, region, profile, attempts)
        self._date: float | None = None

    @staticmethod
    def _make_client(endpoint_url: str | None, region: str | None, profile: str | None, attempts: int) -> Any:
        import boto3
        import botocore.exceptions
        from botocore.config import Config

        try:
            session = boto3.Session(profile_name=profile, region_name=region)
        except botocore.exceptions.ProfileNotFound as exc:
            raise RemoteError(f"AWS profile {profile!r} is not configured") from exc
        timeout = _timeout()
        config = Config(
            connect_timeout=timeout, read_timeout=timeout,
            retries={"mode": "standard", "total_max_attempts": max(1, attempts)},
        )
        try:
            return session.client("s3", endpoint_url=endpoint_url, config=config)
        except (ValueError, botocore.exceptions.BotoCoreError) as exc:
            # A malformed endpoint (ours or AWS_ENDPOINT_URL_S3) or region.
            where = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or "S3"
            raise RemoteError(f"cannot use {where} (region {region or 'default'}): {exc}") from exc

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _where(self) -> str:
        return str(getattr(self.client.meta, "endpoint_url", None) or self.endpoint_url or "S3")

    def _not_s3(self, what: str) -> RemoteError:
        return RemoteError(
            f"{what}: {self._where()} did not answer as S3 does (a captive portal or a proxy? "
            "sign in to the network, or check the endpoint URL)"
        )

    def _saw(self, answer: Mapping[str, Any]) -> None:
        """Remember the server's clock, from the Date of its answer."""
        date = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        if isinstance(date, str):
            try:
                when = parsedate_to_datetime(date)
            except (TypeError, ValueError):
                return
            # HTTP dates are GMT; a "-0000" zone parses as naive.
            self._date = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()

    def _no_web_page(self, what: str, answer: Mapping[str, Any]) -> None:
        """Refuse a web page where an object or a listing should be.

        Our objects are never HTML, and S3 lists in XML: a page is from
        something in between. (Not for a PUT: some servers label its empty
        answer text/html.)
        """
        if _is_web_page(answer):
            raise self._not_s3(what)

    def _call(self, what: str, fn: Callable[[], T], *, conflict: Conflict | None = None) -> T:
        """``fn()``, its failures translated by botocore error code (retries are botocore's).

        ``conflict`` translates the codes of a conditional put first.
        """
        import botocore.exceptions as bx
        from botocore.parsers import ResponseParserError

        try:
            answer = fn()
        except bx.ClientError as exc:
            self._saw(exc.response)
            code = str(exc.response.get("Error", {}).get("Code", ""))
            lost = conflict(code) if conflict is not None else None
            if lost is not None:
                raise lost from exc
            raise self._translate(what, code, exc.response) from exc
        except bx.NoCredentialsError as exc:
            raise RemoteError(
                f"no AWS credentials found for {self.url}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or use --profile"
            ) from exc
        except (bx.ConnectionError, bx.HTTPClientError) as exc:
            raise RemoteError(f"{what}: cannot reach {self._where()}: {exc}") from exc
        except ResponseParserError as exc:
            raise self._not_s3(what) from exc
        if isinstance(answer, Mapping):
            self._saw(answer)
        return answer

    def _translate(self, what: str, code: str, response: Mapping[str, Any]) -> RemoteError | RemoteSignal:
        meta = response.get("ResponseMetadata", {})
        status = int(meta.get("HTTPStatusCode") or 0)
        if code in _MISSING:
            return ObjectMissing(f"{what}: no such object")
        if code == "NoSuchBucket":
            return RemoteError(f"bucket {self.bucket!r} does not exist")
        if code in _DENIED:
            return RemoteError(f"{what}: access denied by S3 ({code}); check the credentials and bucket policy")
        if code == "RequestTimeTooSkewed":
            off = f" by {abs(self._date - time.time()) / 60:.0f} minutes" if self._date is not None else ""
            return RemoteError(f"{what}: S3 refused it because this machine's clock is off{off}; set the clock right")
        if _is_web_page(response):
            # A login page (often a 200 whose HTML botocore turns into a 500 and retries).
            return self._not_s3(what)
        tries = int(meta.get("RetryAttempts") or 0) + 1
        if tries > 1:  # botocore retried it (5xx, throttling) and gave up
            return RemoteError(f"{what} failed after {tries} attempts: S3 answered {code or status}")
        return RemoteError(f"{what}: S3 answered {code or status}")

    def list(self, prefix: str) -> dict[str, str]:
        full = self._key(prefix.rstrip("/")) + "/"
        what = f"list {self.url}/{prefix}"
        out: dict[str, str] = {}
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full, "Delimiter": "/"}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call(what, partial(self.client.list_objects_v2, **kwargs))
            self._no_web_page(what, page)
            if not isinstance(page.get("IsTruncated"), bool):
                raise self._not_s3(what)
            for item in page.get("Contents", []):
                key, etag = item.get("Key"), item.get("ETag")
                if not isinstance(key, str) or not key.startswith(full) or not isinstance(etag, str):
                    raise RemoteError(f"{what}: S3 sent a listing item without a key under the prefix or an ETag")
                out[prefix + key[len(full):]] = etag
            token = page.get("NextContinuationToken")
            if not page["IsTruncated"]:
                return out
            if not token:
                raise RemoteError(f"{what}: S3 sent a truncated listing without a continuation token")

    def get(self, key: str, *, max_bytes: int | None = None) -> bytes:
        what = f"get {key}"
        answer = self._call(what, lambda: self.client.get_object(Bucket=self.bucket, Key=self._key(key)))
        body = answer.get("Body")
        try:
            if body is None or not isinstance(answer.get("ETag"), str):
                raise self._not_s3(what)
            self._no_web_page(what, answer)
            size = answer.get("ContentLength")
            if max_bytes is not None and isinstance(size, int) and size > max_bytes:
                raise ObjectTooLarge(f"{key} in {self.url} is larger than the cap of {max_bytes} bytes")
            return self._read(what, key, body, max_bytes)
        finally:
            if body is not None:
                body.close()

    def _read(self, what: str, key: str, body: Any, max_bytes: int | None) -> bytes:
        """The body, in chunks, stopping as soon as it passes ``max_bytes``."""
        import botocore.exceptions as bx

        out = io.BytesIO()  # getvalue() hands its buffer over instead of copying it
        try:
            for chunk in body.iter_chunks(_CHUNK):
                out.write(chunk)
                if max_bytes is not None and out.tell() > max_bytes:
                    raise ObjectTooLarge(f"{key} in {self.url} is larger than the cap of {max_bytes} bytes")
        except (bx.HTTPClientError, bx.IncompleteReadError) as exc:
            # Dropped while streaming, after botocore's retries were over: the next sync tries again.
            raise RemoteError(f"{what}: the connection to {self._where()} broke while reading: {exc}") from exc
        except bx.FlexibleChecksumError as exc:
            raise RemoteError(f"{what}: the bytes received do not match S3's checksum (damaged on the way)") from exc
        return out.getvalue()

    def head(self, key: str) -> ObjectInfo:
        what = f"head {key}"
        meta = self._call(what, lambda: self.client.head_object(Bucket=self.bucket, Key=self._key(key)))
        etag = meta.get("ETag")
        if not isinstance(etag, str):
            raise self._not_s3(what)
        self._no_web_page(what, meta)
        sha = meta.get("Metadata", {}).get("sha256")
        size = meta.get("ContentLength")
        return ObjectInfo(etag, sha if isinstance(sha, str) else None, size if type(size) is int else None)

    def delete(self, key: str) -> None:
        self._call(f"delete {key}", lambda: self.client.delete_object(Bucket=self.bucket, Key=self._key(key)))

    def put(self, key: str, data: bytes, *, sha256: str, create_only: bool, if_match: str | None = None) -> str:
        what = f"put {key}"
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket, "Key": self._key(key), "Body": data, "Metadata": {"sha256": sha256},
        }
        if create_only:
            kwargs["IfNoneMatch"] = "*"
        elif if_match is not None:
            kwargs["IfMatch"] = if_match

        def conflict(code: str) -> RemoteSignal | None:
            if create_only and code in _CONFLICT:
                return ObjectExists(f"{key} already exists in {self.url}")
            # If-Match on a key that is gone: S3 answers 404, the contract says "changed".
            if if_match is not None and (code in _CONFLICT or code in _MISSING):
                return PreconditionFailed(f"{key} in {self.url} changed since it was read")
            return None

        answer = self._call(what, lambda: self.client.put_object(**kwargs), conflict=conflict)
        etag = answer.get("ETag")
        if not isinstance(etag, str):
            raise self._not_s3(what)
        return etag

    def server_time(self) -> float | None:
        """The Date of S3's most recent answer (its clock); None before any call."""
        return self._date
