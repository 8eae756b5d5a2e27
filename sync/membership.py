"""Being in a team: creating one, joining one, and the owner's writer list.

A team is a remote of scope ``templates`` (see :mod:`sync.team` for what
is signed and checked). Its owner creates it; a member joins it with the
owner key's fingerprint, as a writer or read-only, and nothing is saved
unless the remote's writer list is signed by that key. Joining only reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from localfirst import ids
from localfirst.errors import BadInput, CorruptObject, NotFound, ReadOnly, RemoteError
from localfirst.store import Store

from .changeset import FORMAT, sha256
from .keys import ENCRYPTED_FORMAT, Keyring, Secret, create_keys, join_keys
from .remotes import ObjectMissing, PreconditionFailed, Remote, RemoteConfig, open_remote
from .session import FORMAT_KEY, SMALL_OBJECT, Counting, create_format, read_format
from .team import (
    WRITERS_KEY,
    Removed,
    TeamKeys,
    Writers,
    check_fingerprint,
    check_writer_key,
    fingerprint,
    load_keys,
    new_keys,
)

if TYPE_CHECKING:
    from .session import Session

__all__ = [
    "Joined", "create_team", "join_team", "writers", "read_writers", "change_writers", "list_writers", "cached_writers",
]

MAX_LIST = 4 * 1024 * 1024


@dataclass(frozen=True)
class Joined:
    """A team just created or joined."""

    config: RemoteConfig
    fingerprint: str
    writers: Writers
    #: for a team created encrypted: the recovery key, to show once
    recovery_key: str | None = field(default=None, repr=False)


def _other_team(store: Store, store_id: str) -> None:
    row = store.conn.execute("SELECT name FROM sync_remotes WHERE store_id = ?", [store_id]).fetchone()
    if row:
        raise BadInput(f"this machine is already in that team, as {row[0]!r}")


def _save(store: Store, config: RemoteConfig, writers: Writers, ring: Keyring | None, keys: TeamKeys) -> RemoteConfig:
    from .config import save_remote

    keys.save()
    if ring is not None:
        ring.save()
    config = save_remote(store, config)
    with store.write() as conn:
        _cache(conn, config.name, writers, None)
    return config


def _cache(conn: Any, remote: str, writers: Writers, etag: str | None) -> None:
    conn.execute("INSERT OR REPLACE INTO sync_teams (remote, version, writers, etag) VALUES (?, ?, ?, ?)",
                 [remote, writers.version, writers.to_bytes().decode(), etag])


def create_team(
    store: Store, name: str, url: str, *, endpoint_url: str | None = None, region: str | None = None,
    profile: str | None = None, encrypt: bool = False, passphrase: Secret | None = None,
    client: Remote | None = None, scrypt_n: int | None = None,
) -> Joined:
    """Make a team library at ``url`` (an empty folder or prefix), owned by this machine."""
    from .config import check_config

    config = check_config(store, name, url, endpoint_url, region, profile)
    if encrypt and passphrase is None:
        raise BadInput("an encrypted team needs a passphrase")
    remote = client if client is not None else open_remote(config)
    try:
        remote.get(FORMAT_KEY, max_bytes=SMALL_OBJECT)
    except ObjectMissing:
        pass
    else:
        raise BadInput(f"{config.url} already holds a remote: a team is made in an empty folder or prefix "
                       f"(to join that one: `localfirst team join {name} {config.url} --trust FINGERPRINT`)")
    ring = recovery = None
    if encrypt:
        assert passphrase is not None
        fmt, ring, recovery = create_keys(remote, passphrase, scrypt_n=scrypt_n)
    else:
        fmt = {"type": "localfirst-remote", "format": FORMAT, "store": ids.new_id()}
    fmt["scope"] = "templates"
    store_id = str(fmt["store"])
    keys = new_keys(store_id, owner=True)
    assert keys.owner is not None and keys.owner_key is not None
    writers = Writers(store_id, keys.owner_key, 1, (keys.writer_key,)).signed(keys.owner)
    # The writer list first, format.json last: a remote exists once its format.json does.
    body = writers.to_bytes()
    Counting(remote, ring).put(WRITERS_KEY, body, sha256=sha256(body), create_only=True)
    create_format(remote, config.url, fmt)
    fp = fingerprint(keys.owner_key)
    config = replace(config, scope="templates", cipher=fmt.get("cipher"), store_id=store_id, owner=fp,
                     writer=keys.writer_key)
    return Joined(_save(store, config, writers, ring, keys), fp, writers, recovery)


def join_team(
    store: Store, name: str, url: str, *, trust: str, read_only: bool = False,
    endpoint_url: str | None = None, region: str | None = None, profile: str | None = None,
    passphrase: Secret | None = None, client: Remote | None = None,
) -> Joined:
    """Join the team at ``url`` whose owner key has fingerprint ``trust``; only reads the remote.

    Nothing is saved unless its writer list is signed by that key.
    """
    from .config import check_config

    trust = check_fingerprint(trust)
    config = check_config(store, name, url, endpoint_url, region, profile, create_folder=False)
    remote = client if client is not None else open_remote(config)
    try:
        fmt = read_format(config.url, remote.get(FORMAT_KEY, max_bytes=SMALL_OBJECT))
    except ObjectMissing:
        raise NotFound(f"there is no team library at {config.url} (no format.json): check the URL") from None
    if fmt.get("scope") != "templates":
        raise BadInput(f"{config.url} is a personal remote, not a team library: add it with "
                       f"`localfirst remote add {name} {config.url}`")
    store_id = str(fmt["store"])
    _other_team(store, store_id)
    ring = None
    if fmt.get("format") == ENCRYPTED_FORMAT:
        if passphrase is None:
            raise BadInput(f"team library {config.url} is encrypted: its passphrase or recovery key is needed")
        ring = join_keys(remote, fmt, passphrase, name=name)
    try:
        data = Counting(remote, ring).get(WRITERS_KEY, max_bytes=MAX_LIST)
    except ObjectMissing:
        raise CorruptObject(f"{config.url} has no writer list ({WRITERS_KEY}): it is damaged, or its creation "
                            "stopped half-way") from None
    writers = Writers.parse(data, where=f"{WRITERS_KEY} of {config.url}", store=store_id, trusted=trust)
    keys = new_keys(store_id, owner=False)
    config = replace(config, scope="templates", cipher=fmt.get("cipher"), store_id=store_id, owner=trust,
                     writer=keys.writer_key, read_only=read_only)
    return Joined(_save(store, config, writers, ring, keys), trust, writers)


def cached_writers(conn: Any, config: RemoteConfig) -> tuple[Writers | None, str | None]:
    """The newest writer list this machine has seen for team ``config``, and its ETag.

    Only a list whose signature was checked is kept (:func:`_cache`), so its signature is not checked again.
    """
    row = conn.execute("SELECT writers, etag FROM sync_teams WHERE remote = ?", [config.name]).fetchone()
    if row is None or not config.owner or not config.store_id:
        return None, None
    try:
        return Writers.parse(row[0].encode(), where="the writer list kept here", store=config.store_id,
                             trusted=config.owner, signed=False), row[1]
    except RemoteError:
        return None, None


def writers(s: Session, listing: dict[str, str]) -> Writers:
    """The team's current writer list: the one kept here while the LIST shows it unchanged, else read again.

    A list that is not signed by the trusted owner key, or that is older
    than one already seen here (a rollback), is refused.
    """
    have, seen = cached_writers(s.conn, s.config)
    etag = listing.get(WRITERS_KEY)
    if have is not None and (etag is None or etag == seen):
        return have
    where = f"{WRITERS_KEY} of {s.config.url}"
    try:
        data = s.remote.get(WRITERS_KEY, max_bytes=MAX_LIST)
    except ObjectMissing:
        raise CorruptObject(f"team {s.name!r} has no writer list ({WRITERS_KEY}): nothing of it can be "
                            "trusted") from None
    assert s.config.store_id and s.config.owner
    found = Writers.parse(data, where=where, store=s.config.store_id, trusted=s.config.owner)
    if have is not None and found.version < have.version:
        raise CorruptObject(f"{where} is version {found.version}, older than version {have.version} seen here "
                            "(rolled back): it was refused")
    if have is not None and found.version == have.version and found.to_bytes() != have.to_bytes():
        raise CorruptObject(f"{where} differs from the version {found.version} seen here: it was refused")
    with s.store.write() as conn:
        _cache(conn, s.name, found, etag)
    return found


def read_writers(s: Session) -> Writers:
    """The team's writer list as the remote holds it now, checked; nothing is kept (``verify``)."""
    assert s.config.store_id and s.config.owner
    data = s.remote.get(WRITERS_KEY, max_bytes=MAX_LIST)
    return Writers.parse(data, where=f"{WRITERS_KEY} of {s.config.url}", store=s.config.store_id,
                         trusted=s.config.owner)


def list_writers(s: Session) -> Writers:
    return writers(s, s.remote.list("heads/"))


def change_writers(s: Session, *, add: str | None = None, remove: str | None = None) -> Writers:
    """The owner adds or removes a writer key; returns the new list (compare-and-swap on the remote).

    A removed writer's changesets up to each of their hosts' heads as read
    when the list is replaced stay valid for everyone (pinned by sha256), and
    so do the snapshots they made; anything later is refused.
    """
    keys = s.team_keys()
    if keys.owner is None:
        raise ReadOnly(f"only the owner of team {s.name!r} changes its writer list; this machine is a member")
    key = check_writer_key(add if add is not None else remove or "")
    info = s.remote.head(WRITERS_KEY)
    current = writers(s, {WRITERS_KEY: info.etag})
    if add is not None:
        if key in current.writers:
            return current
        removed = {k: v for k, v in current.removed.items() if k != key}
        new = replace(current, version=current.version + 1, writers=tuple(sorted({*current.writers, key})),
                      removed=removed)
    else:
        if key not in current.writers:
            raise NotFound(f"{key} is not a writer of team {s.name!r} (see `localfirst team writers {s.name}`)")
        from .receive import pull_session

        # What this machine applied of theirs is what stays valid: be up to date first.
        for error in pull_session(s).errors:
            raise error
        hosts = [r[0] for r in s.conn.execute(
            "SELECT host FROM sync_signers WHERE remote = ? AND signer = ?", [s.name, key])]
        # Each of their hosts is pinned at its head as read now, by seq and sha256: what they
        # pushed until this moment stays valid for everyone, and can no longer be rewritten.
        upto = {}
        for host in hosts:
            seq, sha = s.read_head(host)
            if seq > 0:
                upto[host] = (seq, sha)
        from .snapshot import read_manifest, snapshot_ids

        made = tuple(sid for sid in snapshot_ids(s) if read_manifest(s, sid).writer == key)
        new = replace(current, version=current.version + 1, writers=tuple(w for w in current.writers if w != key),
                      removed={**current.removed, key: Removed(upto, made)})
    assert keys.owner is not None
    signed = new.signed(keys.owner)
    body = signed.to_bytes()
    try:
        etag = s.remote.put(WRITERS_KEY, body, sha256=sha256(body), create_only=False, if_match=info.etag)
    except PreconditionFailed:
        raise RemoteError(f"team {s.name!r}'s writer list changed while it was being edited; nothing was "
                          "written: run the command again") from None
    with s.store.write() as conn:
        _cache(conn, s.name, signed, etag)
    return signed


def load_team_keys(config: RemoteConfig) -> TeamKeys:
    assert config.store_id is not None
    return load_keys(config.store_id, config.name, config.writer)
