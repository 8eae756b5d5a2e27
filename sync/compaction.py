"""Compaction: write a snapshot of the current cut, then delete what it supersedes.

    locks/compaction.json     the lease: holder, generation, expiry (create-only, or If-Match on an expired one)
    gc/<id>.json              what a compaction deletes, written BEFORE it deletes anything

The snapshot is not this machine's database: it is a replay of the remote
itself (the newest snapshot, then every changeset after it, up to the heads
listed at the start) into a scratch database, so it holds exactly what the log
says, and nothing this machine has not pushed or got from elsewhere.

Deleting is garbage collection with a safety margin: changesets at or below
the cut of the newest snapshot that is older than the margin, and every
snapshot older than that one. A machine that was offline for less than the
margin still finds its next changesets; one offline for longer bootstraps
from the snapshot (:mod:`sync.receive`). ``purge`` is a margin of zero: after
it, no object holds a deleted row.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from localfirst import ids
from localfirst.errors import BadInput, CorruptObject, LeaseHeld, RemoteError
from localfirst.store import Store

from .changeset import sha256
from .remotes import ObjectExists, ObjectMissing, PreconditionFailed
from .session import Session, log_key
from .snapshot import Manifest, manifest_key, read_manifest, snapshot_ids, write_snapshot
from .team import writable

__all__ = [
    "compact_session", "maybe_compact", "Compacted", "parse_duration", "LEASE_KEY", "LEASE_TTL", "DEFAULT_MARGIN",
    "AUTO_COMPACT_AFTER", "remember_cut", "deleted_before",
]

LEASE_KEY = "locks/compaction.json"
LEASE_TTL = 1800.0
DEFAULT_MARGIN = 7 * 86400.0
# Sync compacts on its own once this many changesets were pushed after the
# newest snapshot (LOCALFIRST_AUTO_COMPACT sets another number; 0 turns it off).
AUTO_COMPACT_AFTER = 1000
_GC = re.compile(r"^gc/([0-7][0-9a-hjkmnp-tv-z]{25})\.json$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """``7d``, ``12h``, ``30m``, ``90s``, ``2w`` or ``0``, in seconds."""
    m = re.fullmatch(r"\s*(\d{1,6})\s*([smhdw]?)\s*", text or "")
    if not m or (m.group(2) == "" and m.group(1) != "0"):
        raise BadInput(f"--margin {text!r} is not a duration (like 7d, 12h, 30m or 0)")
    return float(int(m.group(1)) * _UNITS.get(m.group(2) or "s", 1))


@dataclass
class Compacted:
    remote: str
    snapshot: str
    covers: dict[str, int]
    rows: int
    parts: int
    bytes_written: int = 0
    deleted: list[str] = field(default_factory=list)
    requests: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        changesets = sum(1 for k in self.deleted if k.startswith("log/"))
        others = len(self.deleted) - changesets
        return (f"Wrote snapshot {self.snapshot} of {self.rows} rows ({self.parts} parts, {self.bytes_written} bytes) "
                f"to {self.remote}; deleted {changesets} changesets and {others} snapshot objects; "
                f"{self.requests} requests.")


@dataclass
class _Lease:
    etag: str
    generation: int


def _now(s: Session) -> float:
    server = s.remote.server_time()
    return server if server is not None else time.time()


def _lease_body(s: Session, generation: int, expires: float) -> bytes:
    return json.dumps({"type": "localfirst-lease", "holder": s.host, "generation": generation,
                       "expires": round(expires, 3)}, sort_keys=True).encode()


def _acquire(s: Session) -> _Lease:
    """The compaction lease: made create-only, or taken over If-Match once expired."""
    body = _lease_body(s, 1, _now(s) + LEASE_TTL)
    try:
        return _Lease(s.remote.put(LEASE_KEY, body, sha256=sha256(body), create_only=True), 1)
    except ObjectExists:
        pass
    etag = s.remote.head(LEASE_KEY).etag
    try:
        doc = json.loads(s.remote.get(LEASE_KEY, max_bytes=4096))
        holder, generation, expires = doc["holder"], doc["generation"], doc["expires"]
        if not (isinstance(holder, str) and type(generation) is int and isinstance(expires, (int, float))):
            raise TypeError(doc)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError, AttributeError) as exc:
        raise CorruptObject(f"{LEASE_KEY} is damaged; nothing was deleted. Once no compaction runs, delete it "
                            "by hand and compact again") from exc
    if expires > _now(s):
        when = time.strftime("%H:%M UTC", time.gmtime(min(float(expires), 4e9))) if expires == expires else "?"
        raise LeaseHeld(f"another compaction is running (host {holder}, lease until {when}); nothing was done")
    body = _lease_body(s, generation + 1, _now(s) + LEASE_TTL)
    try:
        return _Lease(s.remote.put(LEASE_KEY, body, sha256=sha256(body), create_only=False, if_match=etag),
                      generation + 1)
    except (PreconditionFailed, ObjectMissing) as exc:
        raise LeaseHeld("another compaction started at the same moment; nothing was done") from exc


def _still_mine(s: Session, lease: _Lease) -> None:
    """The fence before every delete: the lease is still the one this compaction wrote."""
    try:
        etag = s.remote.head(LEASE_KEY).etag
    except ObjectMissing:
        etag = None
    if etag != lease.etag:
        raise RemoteError("the compaction lease was taken over (this compaction ran past it); "
                          "stopped before deleting anything more")


def _release(s: Session, lease: _Lease) -> None:
    body = _lease_body(s, lease.generation, 0)
    try:
        s.remote.put(LEASE_KEY, body, sha256=sha256(body), create_only=False, if_match=lease.etag)
    except (PreconditionFailed, ObjectMissing):
        pass  # taken over: not ours to release


def _replay(s: Session, scratch: Path) -> tuple[Store, dict[str, tuple[int, str]]]:
    """The remote's own state, replayed into a scratch database, and the cut it reached."""
    from .config import save_remote
    from .receive import pull_session

    replica = Store.open(scratch / "replay.db")
    save_remote(replica, s.config)
    inner = Session(replica, s.config, s.remote, progress=None)
    got = pull_session(inner)
    if got.errors:
        raise got.errors[0]
    covers = {host: (seq, sha) for host, seq, sha in replica.conn.execute(
        "SELECT host, seq, sha256 FROM sync_chain WHERE remote = ? AND seq > 0", [s.name])}
    return replica, covers


def deleted_before(s: Session) -> dict[str, int]:
    """Per host, the highest changeset earlier compactions deleted (from ``gc/``)."""
    floor: dict[str, int] = {}
    for key in sorted(s.remote.list("gc/")):
        if not _GC.fullmatch(key):
            continue
        try:
            doc = json.loads(s.remote.get(key, max_bytes=1 << 24))
            for host, (_, last) in doc["logs"].items():
                if ids.is_id(host) and type(last) is int:
                    floor[host] = max(floor.get(host, 0), last)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError):
            continue  # a damaged record only means deleting again what is gone: harmless
    return floor


def compact_session(s: Session, *, margin: float = DEFAULT_MARGIN, purge: bool = False) -> Compacted:
    """Snapshot the remote's current cut under the lease, then delete what a snapshot older than ``margin`` covers.

    ``purge`` is a margin of zero: the new snapshot supersedes everything.
    """
    if purge:
        margin = 0.0
    if s.team_id is not None:
        writable(s.config.read_only, s.name, "compact it")
        # The snapshot is signed: a key the members would refuse takes no lease and deletes nothing.
        from .send import check_writer

        check_writer(s, s.remote.list("heads/"))
    start = s.remote.requests
    s.store_id()
    lease = _acquire(s)
    try:
        with tempfile.TemporaryDirectory(prefix="localfirst-compact-") as scratch:
            replica, covers = _replay(s, Path(scratch))
            try:
                before = s.remote.bytes_sent
                manifest = write_snapshot(s, replica.conn, covers)
                written = s.remote.bytes_sent - before
            finally:
                replica.close()
        result = Compacted(s.name, manifest.id, {h: q for h, (q, _) in covers.items()}, manifest.rows,
                           len(manifest.parts), written)
        remember_cut(s, covers)
        result.deleted = _collect_garbage(s, lease, manifest, margin)
    finally:
        _release(s, lease)
    result.requests = s.remote.requests - start
    return result


def _collect_garbage(s: Session, lease: _Lease, new: Manifest, margin: float) -> list[str]:
    now_ms = int(_now(s) * 1000)
    ids_here = snapshot_ids(s)
    # The newest snapshot old enough to lean on; the one just written when the margin is zero.
    old_enough = [sid for sid in ids_here if ids.id_time_ms(sid) <= now_ms - margin * 1000]
    if margin <= 0:
        old_enough = [sid for sid in ids_here if sid <= new.id]
    if not old_enough:
        return []
    target_id = old_enough[-1]
    target = new if target_id == new.id else read_manifest(s, target_id)
    floor = deleted_before(s)
    logs = {h: (floor.get(h, 0) + 1, q) for h, (q, _) in target.covers.items() if q > floor.get(h, 0)}
    older = [sid for sid in ids_here if sid < target_id]
    doomed: list[str] = []
    for h, (first, last) in sorted(logs.items()):
        doomed += [log_key(h, q) for q in range(first, last + 1)]
    for sid in older:
        doomed.append(manifest_key(sid))  # the manifest first: nobody picks a snapshot whose parts are going
        try:
            doomed += [k for k, _, _ in read_manifest(s, sid).parts]
        except (CorruptObject, ObjectMissing):
            continue
    if not doomed:
        return []
    record = json.dumps({"type": "localfirst-gc", "snapshot": target_id, "logs": {h: list(r) for h, r in logs.items()},
                         "snapshots": older}, sort_keys=True).encode()
    try:
        s.remote.put(f"gc/{ids.new_id()}.json", record, sha256=sha256(record), create_only=True)
    except ObjectExists as exc:
        raise RemoteError("could not record what this compaction deletes; nothing was deleted") from exc
    for key in doomed:
        _still_mine(s, lease)
        s.remote.delete(key)
    return doomed


def remember_cut(s: Session, covers: dict[str, tuple[int, str]]) -> None:
    """Note how many changesets the newest snapshot this machine knows of covers (local, never synced)."""
    total = sum(q for q, _ in covers.values())
    with s.store.write() as conn:
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = "
            "CASE WHEN CAST(excluded.value AS INTEGER) > CAST(value AS INTEGER) THEN excluded.value ELSE value END",
            [f"snapshot_cut:{s.name}", str(total)],
        )


def _threshold() -> int:
    import os

    raw = os.environ.get("LOCALFIRST_AUTO_COMPACT", "").strip().lower()
    if raw in ("", "on"):
        return AUTO_COMPACT_AFTER
    if raw in ("off", "no", "false"):
        return 0
    try:
        return max(0, int(raw))
    except ValueError:
        raise BadInput(f"LOCALFIRST_AUTO_COMPACT={raw!r} is not a number of changesets (or off)") from None


def maybe_compact(s: Session) -> Compacted | None:
    """Compact when more than the threshold of changesets lie after the newest snapshot known here.

    Costs nothing below the threshold; above it, one LIST (and a GET) first
    to learn whether another machine already wrote a newer snapshot.
    """
    limit = _threshold()
    if not limit or s.config.read_only:
        return None
    row = s.conn.execute("SELECT value FROM meta WHERE key = ?", [f"snapshot_cut:{s.name}"]).fetchone()
    cut = int(row[0]) if row else 0
    total = s.conn.execute("SELECT coalesce(sum(seq), 0) FROM sync_chain WHERE remote = ?", [s.name]).fetchone()[0]
    if total - cut <= limit:
        return None
    found = snapshot_ids(s)
    if found:
        latest = read_manifest(s, found[-1])
        remember_cut(s, latest.covers)
        if total - sum(q for q, _ in latest.covers.values()) <= limit:
            return None
    try:
        return compact_session(s)
    except LeaseHeld:
        return None  # another machine is at it
