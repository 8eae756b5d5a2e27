"""The remote interface and the URL factory that picks an implementation.

A remote holds immutable objects under string keys (``heads/<host>.json``,
``log/<host>/<seq>.jsonl.gz``). Four operations are enough for sync: list a
prefix, get, head and put (create-only, or a replace for heads). Each call is
one request, which is how the request budget is counted. ``server_time`` is
extra and costs no request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import unquote, urlparse

from localfirst.errors import BadInput, ObjectTooLarge

__all__ = [
    "Remote", "ObjectInfo", "RemoteSignal", "ObjectExists", "ObjectMissing", "ObjectTooLarge",
    "PreconditionFailed", "RemoteConfig", "open_remote", "check_url", "check_key",
]

_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")


class RemoteSignal(Exception):
    """What a remote answers that sync acts on: control flow, not a user's error.

    Sync catches each where it can act on it; one that escapes is turned into
    a RemoteError at the edge of the sync API (``sync.engine``).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ObjectExists(RemoteSignal):
    """A create-only put found an object already there."""


class ObjectMissing(RemoteSignal):
    """No object at that key."""


class PreconditionFailed(RemoteSignal):
    """A compare-and-swap put found a different version than expected."""


@dataclass(frozen=True)
class ObjectInfo:
    etag: str
    sha256: str | None
    size: int | None = None


class Remote(Protocol):
    """What sync needs from a place that stores objects."""

    url: str

    def list(self, prefix: str) -> dict[str, str]:
        """Every key under ``prefix`` (a folder, ending in ``/``) with its ETag."""

    def get(self, key: str, *, max_bytes: int | None = None) -> bytes:
        """The bytes at ``key``; ObjectMissing when there are none.

        With ``max_bytes``, an object larger than that raises ObjectTooLarge
        without more than about ``max_bytes`` of it ever being held in memory.
        """

    def head(self, key: str) -> ObjectInfo:
        """ETag and stored sha256 of ``key``; ObjectMissing when absent."""

    def put(self, key: str, data: bytes, *, sha256: str, create_only: bool, if_match: str | None = None) -> str:
        """Write ``data`` and return its ETag.

        ``create_only``: refuse (ObjectExists) if anything is at ``key``,
        atomically. ``if_match``: replace only that version, atomically
        (PreconditionFailed otherwise): of racing writers holding the same
        ETag, exactly one wins.
        """

    def delete(self, key: str) -> None:
        """Remove ``key``; removing a key that is not there is no error.

        Only compaction deletes (changesets and snapshots a newer snapshot
        holds, under the compaction lease).
        """

    def server_time(self) -> float | None:
        """The remote's own clock (seconds since the epoch), or None if unknown.

        Costs no request: S3 gives the Date of its last answer, a folder the
        mtime of a file it makes and removes there (the file server's clock).
        """


def check_key(key: str) -> str:
    """Refuse keys that could escape the remote root (``..``, absolute, odd characters)."""
    parts = key.split("/")
    if not parts or any(p in ("", ".", "..") or not _SEGMENT.fullmatch(p) for p in parts):
        raise BadInput(f"invalid object key {key!r}")
    return key


@dataclass(frozen=True)
class RemoteConfig:
    """A configured remote: where it is and how to reach it (never credentials)."""

    name: str
    url: str
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    #: the cipher of an encrypted remote (its keys are in this machine's key file), None when plain
    cipher: str | None = None
    #: "all" (a person's whole history) or "templates" (a team's library)
    scope: str = "all"
    #: the remote's store id, once known (from its format.json)
    store_id: str | None = None
    #: a team library: the owner key's fingerprint this machine trusts, this machine's
    #: public writer key, and whether it only reads
    owner: str | None = None
    writer: str | None = None
    read_only: bool = False

    @property
    def team(self) -> bool:
        return self.scope == "templates"

    @property
    def encrypted(self) -> bool:
        return self.cipher is not None

    def to_json(self) -> dict[str, str | bool | None]:
        return {
            "name": self.name, "url": self.url, "endpoint_url": self.endpoint_url,
            "region": self.region, "profile": self.profile, "encrypted": self.encrypted, "scope": self.scope,
            "owner": self.owner, "read_only": self.read_only,
        }


def check_url(url: str) -> str:
    """Normalise a remote URL, or explain what is accepted."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise BadInput(f"{url}: a folder URL has no host: use file:///absolute/path")
        path = unquote(parsed.path)
        if not path.startswith("/"):
            raise BadInput(f"{url}: use an absolute path, file:///absolute/path")
        return "file://" + path.rstrip("/") if path != "/" else "file:///"
    if parsed.scheme == "s3":
        bucket = parsed.netloc
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
            raise BadInput(f"{url}: {bucket!r} is not a valid S3 bucket name")
        prefix = parsed.path.strip("/")
        if prefix:
            check_key(prefix)
        return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    raise BadInput(f"{url!r} is not a remote URL: use file:///path/to/folder or s3://bucket/prefix")


def open_remote(config: RemoteConfig) -> Remote:
    """The implementation for ``config.url``; S3 imports boto3 only here."""
    url = check_url(config.url)
    if url.startswith("file://"):
        from .folder import FolderRemote

        return FolderRemote(url)
    from .s3 import S3Remote

    return S3Remote(url, endpoint_url=config.endpoint_url, region=config.region, profile=config.profile)
