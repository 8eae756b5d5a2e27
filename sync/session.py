"""What one push or pull shares: the store, the remote, keys and local state."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from localfirst import ids, migrations
from localfirst.errors import BadInput, CorruptObject, ForkDetected, FormatTooNew, RemoteError, WrongKey
from localfirst.store import Store

from . import crypto
from .changeset import FORMAT, sha256
from .keys import ENCRYPTED_FORMAT, Keyring, fetch_key, is_sealed_key, load_keyring
from .remotes import ObjectExists, ObjectInfo, ObjectMissing, Remote, RemoteConfig
from .team import TeamKeys, scope_tables

__all__ = ["Session", "Chain", "head_key", "log_key", "host_of_head", "fork_error"]

FORMAT_KEY = "format.json"
_HEAD = re.compile(r"^heads/([0-7][0-9a-hjkmnp-tv-z]{25})\.json$")
_SHA = re.compile(r"^[0-9a-f]{64}$")

Progress = Callable[[int, int], None]
_sha256 = sha256
# format.json and heads are a few hundred bytes: a larger one is refused unread.
SMALL_OBJECT = 64 * 1024


def head_key(host: str) -> str:
    return f"heads/{host}.json"


def log_key(host: str, seq: int) -> str:
    return f"log/{host}/{seq:012d}.jsonl.gz"


def host_of_head(key: str) -> str | None:
    """The host a head key names, or None for anything that is not a head."""
    m = _HEAD.fullmatch(key)
    return m.group(1) if m else None


def fork_error(config: RemoteConfig, host: str, what: str) -> ForkDetected:
    return ForkDetected(
        f"{what}: another machine is pushing to remote {config.name!r} as host {host} "
        "(was this database file copied from it?). Nothing was overwritten. "
        "Run `localfirst remote reset-host` on this machine to give it its own host id, "
        "then `localfirst sync` again"
    )


@dataclass
class Chain:
    """What we know of one host's log on one remote."""

    seq: int = 0
    sha256: str = ""
    head_seq: int = 0
    head_etag: str | None = None


class Counting:
    """Wraps a remote and counts its calls: one call is one request (thread-safe: pulls fetch concurrently).

    With a keyring (an encrypted remote) it also seals every object it puts
    and opens every object it gets, but for format.json and keys/: nothing
    above it ever sees a sealed byte, and nothing below it a plain one.
    """

    def __init__(self, remote: Remote, keyring: Keyring | None = None) -> None:
        self.inner = remote
        self.url = remote.url
        self.keyring = keyring
        self.requests = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self._lock = threading.Lock()
        self._fetch_lock = threading.Lock()

    def _count(self, sent: int = 0, received: int = 0) -> None:
        with self._lock:
            self.requests += 1
            self.bytes_sent += sent
            self.bytes_received += received

    def list(self, prefix: str) -> dict[str, str]:
        self._count()
        return self.inner.list(prefix)

    def get(self, key: str, *, max_bytes: int | None = None) -> bytes:
        self._count()
        sealed = self.keyring is not None and is_sealed_key(key)
        if sealed and max_bytes is not None:
            max_bytes += crypto.OVERHEAD
        data = self.inner.get(key, max_bytes=max_bytes)
        with self._lock:
            self.bytes_received += len(data)
        return self._open(key, data) if sealed else data

    def _open(self, key: str, data: bytes) -> bytes:
        assert self.keyring is not None
        header = crypto.Sealed.parse(data)
        if header is None:
            raise CorruptObject(f"{key} of {self.url} is not encrypted, in an encrypted remote (written by a "
                                "client without the key?): refused")
        dk = self.keyring.key(header.key_id)
        if dk is None:
            with self._fetch_lock:
                dk = self.keyring.key(header.key_id) or fetch_key(self, self.keyring, header.key_id)
        if dk is None:
            raise CorruptObject(f"{key} of {self.url} is sealed with key {header.key_id}, which this remote "
                                "does not hold")
        plain = dk.open(key, data)
        if plain is None:
            raise CorruptObject(f"{key} of {self.url} does not decrypt: altered, or moved here from another name")
        return plain

    def holds(self, key: str, data: bytes, stored: str | None) -> bool:
        """Whether ``stored`` (what ``head(key)`` reports) is the sha256 of an object put with ``data``.

        Sealing is deterministic, so a sealed object is compared by sealing
        ``data`` again, under each key it may have been sealed with.
        """
        if self.keyring is None or not is_sealed_key(key):
            return stored == sha256(data)
        ring = self.keyring
        return any(stored == sha256(dk.seal(key, data)) for k in ring.data if (dk := ring.key(k)) is not None)

    def head(self, key: str) -> ObjectInfo:
        self._count()
        return self.inner.head(key)

    def delete(self, key: str) -> None:
        self._count()
        self.inner.delete(key)

    def server_time(self) -> float | None:
        """The remote's clock at its last answer (no request)."""
        clock = getattr(self.inner, "server_time", None)
        return clock() if clock is not None else None

    def put(self, key: str, data: bytes, *, sha256: str, create_only: bool, if_match: str | None = None) -> str:
        if self.keyring is not None and is_sealed_key(key):
            data = self.keyring.newest().seal(key, data)
            sha256 = _sha256(data)
        self._count(sent=len(data))
        return self.inner.put(key, data, sha256=sha256, create_only=create_only, if_match=if_match)


class Session:
    def __init__(self, store: Store, config: RemoteConfig, remote: Remote, *, progress: Progress | None) -> None:
        self.store = store
        self.conn = store.conn
        self.config = config
        self.name = config.name
        self.keyring = load_keyring(config.store_id or "", config.name) if config.encrypted else None
        # A Counting passed in (compaction's replay) already seals and counts.
        self.remote = remote if isinstance(remote, Counting) else Counting(remote, self.keyring)
        self.host = store.host_id
        self.schema_version = len(migrations.names())
        self.progress = progress
        self._store_id: str | None = None
        #: a team library: its store id (what its templates are filed under), and the tables it carries
        self.team_id = config.store_id if config.team else None
        self.tables = scope_tables(self.team_id)
        self._team_keys: TeamKeys | None = None

    def team_keys(self) -> TeamKeys:
        """This machine's keys for the team (loaded once)."""
        if self._team_keys is None:
            from .membership import load_team_keys

            self._team_keys = load_team_keys(self.config)
        return self._team_keys

    def chain(self, host: str) -> Chain:
        row = self.conn.execute(
            "SELECT seq, sha256, head_seq, head_etag FROM sync_chain WHERE remote = ? AND host = ?",
            [self.name, host],
        ).fetchone()
        return Chain(*row) if row else Chain()

    def save_chain(self, host: str, chain: Chain) -> None:
        """Record ``chain``, never going back (two pulls at once may race).

        The caller holds the write transaction.
        """
        self.conn.execute(
            "INSERT INTO sync_chain (remote, host, seq, sha256, head_seq, head_etag) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (remote, host) DO UPDATE SET seq = excluded.seq, sha256 = excluded.sha256, "
            "head_seq = excluded.head_seq, head_etag = excluded.head_etag WHERE excluded.seq >= sync_chain.seq",
            [self.name, host, chain.seq, chain.sha256, chain.head_seq, chain.head_etag],
        )

    def advance(self, host: str, seq: int, sha: str) -> None:
        """Our changeset ``seq`` is on the remote (inside the caller's transaction)."""
        self.conn.execute(
            "INSERT INTO sync_chain (remote, host, seq, sha256) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (remote, host) DO UPDATE SET seq = excluded.seq, sha256 = excluded.sha256 "
            "WHERE excluded.seq > sync_chain.seq",
            [self.name, host, seq, sha],
        )

    def saw_head(self, host: str, seq: int, etag: str) -> None:
        """Our head on the remote names ``seq`` and has ``etag`` (inside the caller's transaction)."""
        self.conn.execute(
            "UPDATE sync_chain SET head_seq = ?, head_etag = ? WHERE remote = ? AND host = ? AND head_seq <= ?",
            [seq, etag, self.name, host, seq],
        )

    def store_id(self) -> str:
        """The id of the remote's store, from ``format.json`` (made on first contact)."""
        if self._store_id is not None:
            return self._store_id
        if self.keyring is not None:
            # Known since `remote add`, which checked the key against this very format.json.
            self._store_id = self.keyring.store
            return self._store_id
        row = self.conn.execute("SELECT store_id FROM sync_remotes WHERE name = ?", [self.name]).fetchone()
        if row and row[0]:
            self._store_id = str(row[0])
            return self._store_id
        try:
            data = self.remote.get(FORMAT_KEY, max_bytes=SMALL_OBJECT)
        except ObjectMissing:
            doc = {"type": "localfirst-remote", "format": FORMAT, "store": ids.new_id()}
            data = json.dumps(doc, sort_keys=True).encode()
            try:
                self.remote.put(FORMAT_KEY, data, sha256=sha256(data), create_only=True)
            except ObjectExists:
                data = self.remote.get(FORMAT_KEY, max_bytes=SMALL_OBJECT)
        doc = read_format(self.config.url, data)
        if doc["format"] == ENCRYPTED_FORMAT:
            raise WrongKey(
                f"remote {self.name!r} is encrypted, and this machine added it without its key: nothing was "
                f"written. To sync with it: `localfirst remote remove {self.name}`, then `localfirst remote add "
                f"{self.name} {self.config.url}` with its passphrase or recovery key"
            )
        if doc.get("scope") == "templates" and not self.config.team:
            raise BadInput(f"remote {self.name!r} is a team library, not a personal remote: nothing was written. "
                           f"Remove it (`localfirst remote remove {self.name}`) and join it with `localfirst team "
                           "join NAME URL --trust FINGERPRINT`")
        store = str(doc["store"])
        with self.store.write() as conn:
            conn.execute("UPDATE sync_remotes SET store_id = ? WHERE name = ?", [store, self.name])
        self._store_id = store
        return store

    def read_head(self, host: str) -> tuple[int, str]:
        """(seq, sha256) from ``heads/<host>.json``, checked."""
        key = head_key(host)
        doc = _json(self.remote.get(key, max_bytes=SMALL_OBJECT), f"{key} of {self.config.url}")
        seq, sha, named = doc.get("seq"), doc.get("sha256"), doc.get("host")
        if (
            named != host or not isinstance(seq, int) or isinstance(seq, bool) or seq < 0
            or not isinstance(sha, str) or not (_SHA.fullmatch(sha) or (seq == 0 and sha == ""))
        ):
            raise CorruptObject(f"{key} of {self.config.url} is damaged")
        return seq, sha

    def tick(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(done, total)


def read_format(url: str, data: bytes) -> dict[str, Any]:
    """A remote's ``format.json``, checked: a localfirst remote's, of a format and cipher this build knows."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        doc = None
    store = doc.get("store") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or doc.get("type") != "localfirst-remote" or not isinstance(store, str) \
            or not ids.is_id(store):
        raise CorruptObject(f"{url} holds a {FORMAT_KEY} that is not a localfirst remote's")
    fmt = doc.get("format")
    if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt > ENCRYPTED_FORMAT:
        raise FormatTooNew(f"{url} uses sync format {str(fmt)[:20]}; upgrade localfirst to sync with it")
    if fmt == ENCRYPTED_FORMAT and doc.get("cipher") != crypto.CIPHER:
        raise CorruptObject(f"{url} is encrypted with {str(doc.get('cipher'))[:40]!r}, a cipher this "
                            f"localfirst does not know (it knows {crypto.CIPHER})")
    return doc


def create_format(remote: Remote | Counting, url: str, doc: dict[str, Any]) -> None:
    """Create a new remote's ``format.json`` (create-only: a remote exists once it does)."""
    data = json.dumps(doc, sort_keys=True).encode()
    try:
        remote.put(FORMAT_KEY, data, sha256=sha256(data), create_only=True)
    except ObjectExists:
        raise RemoteError(f"another machine made a remote at {url} at the same moment; nothing was saved here: "
                          "run the command again") from None


def _json(data: bytes, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise CorruptObject(f"{where} is not valid JSON") from exc
    if not isinstance(doc, dict):
        raise CorruptObject(f"{where} is not a JSON object")
    return doc


def check_own_head(s: Session, listing: dict[str, str], chain: Chain) -> None:
    """Stop if someone else has moved this host's head (a copied database).

    Push calls it before writing; pull calls it too, so that a copy that only
    reads is told as well, instead of silently skipping its twin's changesets.
    Costs no request while the head's ETag is the one last seen.
    """
    etag = listing.get(head_key(s.host))
    if etag is None:
        if chain.head_seq > 0:
            raise RemoteError(
                f"remote {s.name!r} no longer holds this host's head {head_key(s.host)} (was it emptied?). "
                f"To push everything again: `localfirst remote remove {s.name}` then `localfirst remote add`"
            )
        return
    if etag == chain.head_etag:
        return
    seq, sha = s.read_head(s.host)
    if seq > 0 and chain.seq == 0:
        raise ForkDetected(
            f"remote {s.name!r} already holds {seq} changesets of this host id {s.host} (was the remote "
            "removed and added again, or this database copied?). Nothing was overwritten. Run "
            "`localfirst remote reset-host`, then `localfirst sync` again"
        )
    if seq > chain.seq or (seq == chain.seq and sha != chain.sha256):
        raise fork_error(s.config, s.host, f"{head_key(s.host)} is at changeset {seq}, this machine at {chain.seq}")
    # Our own head, written by an attempt that stopped before recording it.
    with s.store.write():
        s.saw_head(s.host, seq, etag)
