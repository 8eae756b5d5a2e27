"""Remotes, kept in the database they sync.

A remote's configuration lives beside its state (what was pushed, applied
and is waiting) in the same file and changes in the same transactions, so
the two cannot disagree, and ``--db other.db`` brings its own remotes.
Credentials are never stored: S3 ones come from boto3's usual chain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from localfirst.errors import BadInput, CorruptObject, NotFound, RemoteError
from localfirst.store import Store
from localfirst.timeutil import now_utc

from . import capture
from .keys import ENCRYPTED_FORMAT, Secret, create_keys, join_keys
from .remotes import ObjectMissing, Remote, RemoteConfig, check_url, open_remote
from .session import FORMAT_KEY, SMALL_OBJECT, create_format, read_format
from .team import scope_tables

__all__ = ["Added", "add_remote", "remove_remote", "list_remotes", "get_remote", "check_config", "save_remote"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")


@dataclass(frozen=True)
class Added:
    """A remote just added, and what its adding said."""

    config: RemoteConfig
    #: for a remote created encrypted: the recovery key, to show once (it is kept nowhere)
    recovery_key: str | None = field(default=None, repr=False)
    #: False when the remote could not be reached: it is checked at the first sync instead
    reached: bool = True

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def url(self) -> str:
        return self.config.url


def add_remote(
    store: Store, name: str, url: str, *,
    endpoint_url: str | None = None, region: str | None = None, profile: str | None = None,
    encrypt: bool = False, passphrase: Secret | None = None, client: Remote | None = None,
    scrypt_n: int | None = None,
) -> Added:
    """Add a remote; its first push will carry everything already in the store.

    The remote is looked at first: one that is encrypted is joined with
    ``passphrase`` (a passphrase or the recovery key, or a function that
    asks for one), checked against its key check before anything is saved;
    with ``encrypt``, an empty one is created encrypted. ``client`` replaces
    the remote implementation (tests); ``scrypt_n`` the passphrase stretching
    cost of a new remote (tests; the default is in ``sync.crypto``).
    """
    config = check_config(store, name, url, endpoint_url, region, profile)
    try:
        remote = client if client is not None else open_remote(config)
        data = remote.get(FORMAT_KEY, max_bytes=SMALL_OBJECT)
    except ObjectMissing:
        data = None
    except RemoteError as exc:
        if encrypt or isinstance(exc, CorruptObject):  # too large is damage, not distance
            raise
        return Added(save_remote(store, config), reached=False)  # offline: the first sync reads format.json
    fmt = None if data is None else read_format(remote.url, data)
    if fmt is not None and fmt.get("scope") == "templates":
        raise BadInput(f"{config.url} is a team library: join it with `localfirst team join {name} {config.url} "
                       "--trust FINGERPRINT`")
    recovery = None
    encrypted = fmt is not None and fmt.get("format") == ENCRYPTED_FORMAT
    if not encrypted and not encrypt:
        return Added(save_remote(store, config))
    if passphrase is None:
        raise BadInput(f"remote {name!r} at {config.url} is encrypted: its passphrase or recovery key is needed"
                       if fmt is not None else "an encrypted remote needs a passphrase")
    if fmt is None:
        fmt, ring, recovery = create_keys(remote, passphrase, scrypt_n=scrypt_n)
        create_format(remote, config.url, fmt)
    elif encrypted:
        ring = join_keys(remote, fmt, passphrase, name=name)
    else:
        raise BadInput(f"{config.url} was created as a plain remote, and a remote cannot be encrypted later: "
                       "use another folder or prefix for an encrypted one")
    ring.save()
    config = replace(config, cipher=fmt["cipher"], store_id=ring.store)
    return Added(save_remote(store, config), recovery_key=recovery)


def check_config(store: Store, name: str, url: str, endpoint_url: str | None, region: str | None,
                 profile: str | None, *, create_folder: bool = True) -> RemoteConfig:
    """A new remote's configuration, checked; a folder remote's folder is made (unless ``create_folder`` is false)."""
    if not _NAME.fullmatch(name):
        raise BadInput(f"{name!r} is not a valid remote name (letters, digits, '-', '_', '.')")
    url = check_url(url)
    if not url.startswith("s3://") and (endpoint_url or region or profile):
        raise BadInput("--endpoint-url, --region and --profile apply only to s3:// remotes")
    if endpoint_url is not None:
        _check_endpoint(endpoint_url)
    if region is not None and not re.fullmatch(r"[a-z0-9][a-z0-9-]*[a-z0-9]", region):
        raise BadInput(f"{region!r} is not a region name (like eu-west-1, auto or us-east-1)")
    if store.conn.execute("SELECT 1 FROM sync_remotes WHERE name = ?", [name]).fetchone():
        raise BadInput(f"a remote named {name!r} already exists; remove it first")
    if url.startswith("file://") and create_folder:
        folder = Path(url.removeprefix("file://"))
        if not folder.parent.is_dir():
            raise BadInput(f"cannot use {folder}: its parent folder does not exist")
        try:
            folder.mkdir(exist_ok=True)
        except OSError as exc:
            raise BadInput(f"cannot use {folder} as a remote folder: {exc.strerror}") from exc
    return RemoteConfig(name, url, endpoint_url, region, profile)


def save_remote(store: Store, config: RemoteConfig) -> RemoteConfig:
    """Record ``config`` as it is, without looking at the remote (a scratch copy of a known one)."""
    with store.write() as conn:
        if conn.execute("SELECT 1 FROM sync_remotes WHERE name = ?", [config.name]).fetchone():
            raise BadInput(f"a remote named {config.name!r} already exists; remove it first")
        conn.execute(
            "INSERT INTO sync_remotes (name, url, endpoint_url, region, profile, added_utc, cipher, scope, store_id, "
            "owner, writer, read_only) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [config.name, config.url, config.endpoint_url, config.region, config.profile, now_utc(),
             config.cipher, config.scope, config.store_id, config.owner, config.writer, int(config.read_only)],
        )
        capture.seed(conn, config.name, tables=scope_tables(config.store_id if config.team else None))
    return config


def remove_remote(store: Store, name: str) -> None:
    """Forget a remote and everything we recorded about it (the remote itself is untouched); a team's templates too."""
    config = get_remote(store, name)
    with store.write() as conn:
        for table in ("sync_outbox", "sync_chain", "sync_pending", "sync_teams", "sync_signers"):
            conn.execute(f"DELETE FROM {table} WHERE remote = ?", [name])
        conn.execute("DELETE FROM sync_remotes WHERE name = ?", [name])
        if config.team and config.store_id:
            # Leaving a team takes its library off this machine (a personal copy made with
            # `templates copy` stays); nothing is deleted anywhere else: no tombstone is written.
            team = [config.store_id]
            for table in ("template_labels", "template_versions"):
                conn.execute(f"DELETE FROM {table} WHERE template_id IN (SELECT id FROM templates WHERE team = ?)",
                             team)
            conn.execute("DELETE FROM templates WHERE team = ?", team)
            conn.execute("DELETE FROM tombstones WHERE tbl = 'templates' AND team = ?", team)


def list_remotes(store: Store) -> list[RemoteConfig]:
    rows = store.conn.execute(
        "SELECT name, url, endpoint_url, region, profile, cipher, scope, store_id, owner, writer, read_only "
        "FROM sync_remotes ORDER BY name"
    ).fetchall()
    return [RemoteConfig(name, url, endpoint, region, profile, cipher, scope, store_id, owner, writer, bool(read_only))
            for name, url, endpoint, region, profile, cipher, scope, store_id, owner, writer, read_only in rows]


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
