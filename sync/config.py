"""Remotes, kept in the database they sync.

A remote's configuration lives beside its state (what was pushed, applied
and is waiting) in the same file and changes in the same transactions, so
the two cannot disagree, and ``--db other.db`` brings its own remotes.
Credentials are never stored: S3 ones come from boto3's usual chain.
"""

from __future__ import annotations

import re
from pathlib import Path

from localfirst.errors import BadInput, NotFound
from localfirst.store import Store
from localfirst.timeutil import now_utc

from . import capture
from .remotes import RemoteConfig, check_url

__all__ = ["add_remote", "remove_remote", "list_remotes", "get_remote"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")


def add_remote(
    store: Store, name: str, url: str, *,
    endpoint_url: str | None = None, region: str | None = None, profile: str | None = None,
) -> RemoteConfig:
    """Add a remote; its first push will carry everything already in the store."""
    if not _NAME.fullmatch(name):
        raise BadInput(f"{name!r} is not a valid remote name (letters, digits, '-', '_', '.')")
    url = check_url(url)
    if not url.startswith("s3://") and (endpoint_url or region or profile):
        raise BadInput("--endpoint-url, --region and --profile apply only to s3:// remotes")
    if endpoint_url is not None:
        _check_endpoint(endpoint_url)
    if region is not None and not re.fullmatch(r"[a-z0-9][a-z0-9-]*[a-z0-9]", region):
        raise BadInput(f"{region!r} is not a region name (like eu-west-1, auto or us-east-1)")
    if url.startswith("file://"):
        folder = Path(url.removeprefix("file://"))
        if not folder.parent.is_dir():
            raise BadInput(f"cannot use {folder}: its parent folder does not exist")
        try:
            folder.mkdir(exist_ok=True)
        except OSError as exc:
            raise BadInput(f"cannot use {folder} as a remote folder: {exc.strerror}") from exc
    with store.write() as conn:
        if conn.execute("SELECT 1 FROM sync_remotes WHERE name = ?", [name]).fetchone():
            raise BadInput(f"a remote named {name!r} already exists; remove it first")
        conn.execute(
            "INSERT INTO sync_remotes (name, url, endpoint_url, region, profile, added_utc) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [name, url, endpoint_url, region, profile, now_utc()],
        )
        capture.seed(conn, name)
    return RemoteConfig(name, url, endpoint_url, region, profile)


def remove_remote(store: Store, name: str) -> None:
    """Forget a remote and everything we recorded about it (the remote itself is untouched)."""
    get_remote(store, name)
    with store.write() as conn:
        for table in ("sync_outbox", "sync_chain", "sync_pending"):
            conn.execute(f"DELETE FROM {table} WHERE remote = ?", [name])
        conn.execute("DELETE FROM sync_remotes WHERE name = ?", [name])


def list_remotes(store: Store) -> list[RemoteConfig]:
    rows = store.conn.execute(
        "SELECT name, url, endpoint_url, region, profile FROM sync_remotes ORDER BY name"
    ).fetchall()
    return [RemoteConfig(*r) for r in rows]


def get_remote(store: Store, name: str | None = None) -> RemoteConfig:
    """The remote called ``name``; without a name, the only one configured."""
    remotes = list_remotes(store)
    if name is None:
        if not remotes:
            raise NotFound("no remote configured: add one with `localfirst remote add NAME URL`")
        if len(remotes) > 1:
            names = ", ".join(r.name for r in remotes)
            raise BadInput(f"several remotes are configured ({names}): name the one to use")
        return remotes[0]
    for r in remotes:
        if r.name == name:
            return r
    raise NotFound(f"no remote named {name!r} (see `localfirst remote list`)")


def _check_endpoint(endpoint_url: str) -> None:
    """An http(s) URL with a host and, when given, a numeric port."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(endpoint_url)
        parts.port  # noqa: B018 -- raises ValueError on a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInput(f"{endpoint_url!r} is not an http(s) endpoint URL")
