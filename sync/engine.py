"""The public face of sync: push, pull and sync a store with a remote.

    from localfirst.store import Store
    import sync

    store = Store.open("logs.db")
    result = sync.sync(store, "origin")     # or sync.push / sync.pull
    print(result.summary())

``remote`` names a configured remote (optional when there is only one);
``client`` replaces the remote implementation (tests wrap it to count
requests or inject failures); ``progress(done, total)`` is called as
changesets move.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from localfirst import ids
from localfirst.errors import BadInput, CorruptObject, RemoteError
from localfirst.store import Store

from . import capture, keys, membership
from .apply import Conflict
from .audit import Verified, verify_session
from .collect import Held
from .compaction import DEFAULT_MARGIN, Compacted, compact_session, maybe_compact
from .config import get_remote
from .keys import Secret
from .receive import pull_session
from .remotes import Remote, RemoteSignal, open_remote
from .send import push_session
from .session import Progress, Session, head_key
from .team import Writers, writable

__all__ = [
    "push", "pull", "sync", "status", "reset_host", "compact", "Compacted", "verify", "Verified",
    "PushResult", "PullResult", "SyncResult", "RemoteStatus", "HostStatus", "change_passphrase", "rotate_key",
]


@dataclass
class PushResult:
    remote: str
    changesets: int = 0
    rows: int = 0
    bytes: int = 0
    requests: int = 0
    #: rows not sent because other machines would refuse them: (table, key, why)
    held: list[Held] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["held"] = [{"table": t, "key": k, "reason": why} for t, k, why in self.held]
        return out

    def summary(self) -> str:
        return (
            f"Pushed {_n(self.changesets, 'changeset')} ({_n(self.rows, 'row')}, {_size(self.bytes)}) "
            f"to {self.remote}; {_n(self.requests, 'request')}.{_held(self.held)}"
        )


@dataclass
class PullResult:
    remote: str
    hosts: int = 0
    changesets: int = 0
    rows: int = 0
    bytes: int = 0
    requests: int = 0
    #: keys that arrived with other content than the one here
    conflicts: list[Conflict] = field(default_factory=list)
    #: the snapshot this pull started from, when it was far behind
    snapshot: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["conflicts"] = [c.to_json() for c in self.conflicts]
        return out

    def summary(self) -> str:
        return (
            f"Pulled {_n(self.changesets, 'changeset')} ({_n(self.rows, 'row')}, {_size(self.bytes)}) "
            f"from {_n(self.hosts, 'host')} via {self.remote}; {_n(self.requests, 'request')}."
            f"{_conflicts(self.conflicts)}"
        )


@dataclass
class SyncResult:
    pulled: PullResult
    pushed: PushResult
    #: the compaction this sync ran on its own, past the threshold
    compacted: Compacted | None = None

    @property
    def requests(self) -> int:
        return self.pulled.requests + self.pushed.requests

    def to_json(self) -> dict[str, Any]:
        return {"remote": self.pulled.remote, "pulled": self.pulled.to_json(), "pushed": self.pushed.to_json(),
                "requests": self.requests, "compacted": self.compacted.to_json() if self.compacted else None}

    def summary(self) -> str:
        return (
            f"Synced with {self.pulled.remote}: received {_n(self.pulled.changesets, 'changeset')} "
            f"({_n(self.pulled.rows, 'row')}), sent {_n(self.pushed.changesets, 'changeset')} "
            f"({_n(self.pushed.rows, 'row')}); {_n(self.requests, 'request')}."
            f"{_conflicts(self.pulled.conflicts)}{_held(self.pushed.held)}"
            + (f" {self.compacted.summary()}" if self.compacted else "")
        )


def _n(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _conflicts(found: list[Conflict]) -> str:
    if not found:
        return ""
    first = found[0]
    return (f" {_n(len(found), 'key')} arrived with other content than here (first: {first.table} {first.key} "
            f"from {first.source}); every machine keeps the same version: see `localfirst remote status`.")


def _held(held: list[Held]) -> str:
    if not held:
        return ""
    table, key, why = held[0]
    return (f" {_n(len(held), 'row')} not sent, as other machines would refuse them "
            f"(first: {table} {key}: {why}).")


def _size(n: int) -> str:
    return f"{n} B" if n < 1000 else f"{n / 1000:.1f} kB" if n < 1_000_000 else f"{n / 1_000_000:.1f} MB"


_F = TypeVar("_F", bound=Callable[..., Any])


def _signals_are_errors(fn: _F) -> _F:
    """A remote's signal that nothing inside acted on reaches the user as one RemoteError."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RemoteSignal as exc:
            raise RemoteError(f"{exc.message}; the remote changed while this ran: try again") from exc

    return wrapper  # type: ignore[return-value]


def _session(store: Store, remote: str | None, client: Remote | None, progress: Progress | None) -> Session:
    config = get_remote(store, remote)
    return Session(store, config, client if client is not None else open_remote(config), progress=progress)


@_signals_are_errors
def push(store: Store, remote: str | None = None, *, client: Remote | None = None,
         progress: Progress | None = None) -> PushResult:
    """Send this store's new writes to the remote."""
    s = _session(store, remote, client, progress)
    sent, rows, held = push_session(s)
    return PushResult(s.name, sent, rows, s.remote.bytes_sent, s.remote.requests, held)


@_signals_are_errors
def pull(store: Store, remote: str | None = None, *, client: Remote | None = None,
         progress: Progress | None = None) -> PullResult:
    """Apply what other hosts pushed to the remote since the last pull."""
    s = _session(store, remote, client, progress)
    got = pull_session(s)
    if got.errors:
        raise got.errors[0]
    return PullResult(s.name, got.hosts, got.changesets, got.rows, s.remote.bytes_received, s.remote.requests,
                      got.conflicts, got.snapshot)


@_signals_are_errors
def sync(store: Store, remote: str | None = None, *, client: Remote | None = None,
         progress: Progress | None = None) -> SyncResult:
    """Pull, then push; the push reuses the pull's listing of heads.

    A host whose changesets are refused (corrupt, too new) does not stop
    the others, nor our push: its error is raised at the end.
    """
    s = _session(store, remote, client, progress)
    got = pull_session(s)
    pulled = PullResult(s.name, got.hosts, got.changesets, got.rows, s.remote.bytes_received, s.remote.requests,
                        got.conflicts, got.snapshot)
    before = s.remote.requests
    sent, sent_rows, held = push_session(s, got.listing)
    if got.errors:
        raise got.errors[0]
    pushed = PushResult(s.name, sent, sent_rows, s.remote.bytes_sent, s.remote.requests - before, held)
    # Past the threshold, compact too; never on a sync that moved nothing, so
    # an idle sync stays one request.
    compacted = None
    if got.changesets or sent:
        try:
            compacted = maybe_compact(s)
        except CorruptObject as exc:
            # The sync itself went through; the remote needs a look (`verify`).
            raise CorruptObject(f"synced, but compacting on its own stopped: {exc.message}") from exc
    return SyncResult(pulled, pushed, compacted)


@_signals_are_errors
def compact(store: Store, remote: str | None = None, *, margin: float = DEFAULT_MARGIN, purge: bool = False,
            client: Remote | None = None) -> Compacted:
    """Write a snapshot of the remote's current cut, then delete what an old enough snapshot supersedes."""
    s = _session(store, remote, client, None)
    return compact_session(s, margin=margin, purge=purge)


@_signals_are_errors
def verify(store: Store, remote: str | None = None, *, share: float = 0.0, local: bool = False,
           client: Remote | None = None, seed: int | None = None) -> Verified:
    """Walk the remote and report what is damaged (nothing is repaired); ``share`` of objects is read in full."""
    s = _session(store, remote, client, None)
    return verify_session(s, share=share, local=local, seed=seed)


@_signals_are_errors
def change_passphrase(store: Store, remote: str | None = None, *, passphrase: Secret,
                      client: Remote | None = None, scrypt_n: int | None = None) -> None:
    """Wrap an encrypted remote's master key under a new passphrase; the old one stops opening it."""
    s = _session(store, remote, client, None)
    if s.team_id is not None:
        writable(s.config.read_only, s.name, "change its passphrase")
    keys.change_passphrase(s.remote, _ring(s), passphrase, scrypt_n=scrypt_n)


@_signals_are_errors
def rotate_key(store: Store, remote: str | None = None, *, client: Remote | None = None) -> str:
    """Add a data key to an encrypted remote; returns its id. New objects use it; old ones stay readable."""
    s = _session(store, remote, client, None)
    if s.team_id is not None:
        writable(s.config.read_only, s.name, "add keys to it")
    return keys.rotate_key(s.remote, _ring(s))


@_signals_are_errors
def create_team(store: Store, name: str, url: str, **options: Any) -> membership.Joined:
    """Make a team library at ``url``, owned by this machine (see :func:`sync.membership.create_team`)."""
    return membership.create_team(store, name, url, **options)


@_signals_are_errors
def join_team(store: Store, name: str, url: str, *, trust: str, **options: Any) -> membership.Joined:
    """Join the team library at ``url`` whose owner key has fingerprint ``trust``; reads only."""
    return membership.join_team(store, name, url, trust=trust, **options)


def _team(store: Store, name: str, client: Remote | None) -> Session:
    s = _session(store, name, client, None)
    if not s.config.team:
        raise BadInput(f"remote {name!r} is not a team library (see `localfirst remote list`)")
    return s


@_signals_are_errors
def team_writers(store: Store, name: str, *, add: str | None = None, remove: str | None = None,
                 client: Remote | None = None) -> Writers:
    """The team's writer list, read from its remote; the owner may add or remove a key."""
    s = _team(store, name, client)
    if add is None and remove is None:
        return membership.list_writers(s)
    return membership.change_writers(s, add=add, remove=remove)


def team_whoami(store: Store, name: str) -> str:
    """This machine's writer key for team ``name`` (no request)."""
    config = get_remote(store, name)
    if not config.team or not config.writer:
        raise BadInput(f"remote {name!r} is not a team library (see `localfirst remote list`)")
    return config.writer


def _ring(s: Session) -> keys.Keyring:
    if s.keyring is None:
        raise BadInput(f"remote {s.name!r} is not encrypted (a remote is created encrypted or plain, once)")
    return s.keyring


@dataclass
class HostStatus:
    host: str
    pushed: int
    applied: int
    this_machine: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RemoteStatus:
    remote: str
    url: str
    host: str
    waiting: int
    pending_changeset: int | None
    hosts: list[HostStatus] = field(default_factory=list)
    requests: int = 0
    #: keys that arrived with other content, newest first (every one ever seen here)
    conflicts: list[Conflict] = field(default_factory=list)
    #: whether objects are sealed, and the id of the data key new objects are sealed with
    encrypted: bool = False
    key_id: str | None = None
    scope: str = "all"
    #: the newest snapshot: id, created_utc, age in seconds, its cut, and the
    #: changesets (and their bytes) pushed after it; None when there is none
    snapshot: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["hosts"] = [h.to_json() for h in self.hosts]
        out["conflicts"] = [c.to_json() for c in self.conflicts]
        return out


@_signals_are_errors
def status(store: Store, remote: str | None = None, *, client: Remote | None = None) -> RemoteStatus:
    """What waits to be pushed, and what each host has pushed and how much of it is applied here."""
    s = _session(store, remote, client, None)
    pending = s.conn.execute("SELECT seq FROM sync_pending WHERE remote = ?", [s.name]).fetchone()
    result = RemoteStatus(s.name, s.config.url, s.host, capture.pending_count(s.conn, s.name, tables=s.tables),
                          pending[0] if pending else None, encrypted=s.keyring is not None,
                          key_id=s.keyring.newest_id if s.keyring else None, scope=s.config.scope)
    result.conflicts = [
        Conflict(*row) for row in s.conn.execute(
            "SELECT tbl, key, kept, other, source FROM sync_conflicts ORDER BY seen_utc DESC, tbl, key")
    ]
    listing = s.remote.list("heads/")
    from .session import host_of_head

    for key in sorted(listing):
        host = host_of_head(key)
        if host is None:
            continue
        seq, _ = s.read_head(host)
        result.hosts.append(HostStatus(host, seq, s.chain(host).seq, host == s.host))
    if head_key(s.host) not in listing and s.chain(s.host).seq:
        result.hosts.append(HostStatus(s.host, 0, s.chain(s.host).seq, True))
    result.snapshot = _snapshot_status(s, {h.host: h.pushed for h in result.hosts})
    result.requests = s.remote.requests
    return result


def _snapshot_status(s: Session, heads: dict[str, int]) -> dict[str, Any] | None:
    """The newest snapshot, and what was pushed after its cut (a HEAD per changeset, for the bytes)."""
    from localfirst import ids

    from .session import log_key
    from .snapshot import newest

    manifest = newest(s)
    if manifest is None:
        return None
    keys = [log_key(host, q) for host, pushed in heads.items()
            for q in range(manifest.covers.get(host, (0, ""))[0] + 1, pushed + 1)]
    with ThreadPoolExecutor(max_workers=8) as pool:  # a HEAD each, 8 in flight
        size = sum(info.size or 0 for info in pool.map(s.remote.head, keys))
    after = len(keys)
    server = s.remote.server_time()
    now_ms = int((server if server is not None else time.time()) * 1000)
    return {"id": manifest.id, "created_utc": manifest.created_utc, "rows": manifest.rows,
            "age_seconds": max(0, (now_ms - ids.id_time_ms(manifest.id)) // 1000),
            "covers": {h: q for h, (q, _) in manifest.covers.items()},
            "changesets_after": after, "bytes_after": size}


def reset_host(store: Store) -> tuple[str, str]:
    """Give this store a new host id after a fork error; returns (old, new).

    Changesets built under the old id and not yet sent are dropped (their
    rows stay queued and go out under the new id). What was pushed under the
    old id becomes another host's log, so the changesets the other machine
    pushed as that host are pulled here like anyone else's.
    """
    new = ids.new_id()
    with store.write() as conn:
        old = store.host_id
        conn.execute("UPDATE meta SET value = ? WHERE key = 'host_id'", [new])
        conn.execute("DELETE FROM sync_pending")
        # The other machine now writes the old host's head: forget its ETag so
        # the next pull reads it.
        conn.execute("UPDATE sync_chain SET head_etag = NULL WHERE host = ?", [old])
    return old, new
