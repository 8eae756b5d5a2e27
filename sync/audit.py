"""verify: walk a remote and prove it is whole, without changing anything.

For every host: the head, and every changeset from the newest snapshot's cut
(or what compaction deleted) to the head: present, and, for those read, in
the right place, chained to the one before and well formed. For every
snapshot: its manifest, and every part it names. Reading data is the costly
part, so by default only the names, sizes and hashes the remote keeps are
checked (a HEAD per object; the last changeset of each host is always read,
to tie the log to its head); ``sample`` reads that share of objects in full.
Damage is reported, never repaired.
"""

from __future__ import annotations

import random
import re
import sqlite3
from dataclasses import asdict, dataclass, field
from typing import Any

from localfirst.errors import CorruptObject, FormatTooNew, WrongKey
from localfirst.registry import TABLES, capture_sql

from . import capture, membership
from .changeset import peek_header, sha256
from .check import Schema
from .compaction import deleted_before
from .receive import MAX_OBJECT, decode_checked
from .remotes import ObjectMissing
from .session import Session, host_of_head, log_key
from .snapshot import check_manifest_signature, decode_part, read_manifest, snapshot_ids
from .team import WRITERS_KEY, Writers, check_scope

__all__ = ["verify_session", "Verified", "Problem", "check_local"]


@dataclass(frozen=True)
class Problem:
    object: str
    what: str


@dataclass
class Verified:
    remote: str
    objects: int = 0
    read: int = 0
    problems: list[Problem] = field(default_factory=list)
    not_applied_here: int = 0
    not_pushed_yet: int = 0
    requests: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        state = "whole" if not self.problems else f"{len(self.problems)} problems found"
        return (f"Remote {self.remote}: {state}; {self.objects} objects checked, {self.read} read in full; "
                f"{self.not_applied_here} changesets not applied here yet, {self.not_pushed_yet} rows here not "
                f"pushed yet; {self.requests} requests.")


def _check_snapshots(s: Session, schema: Schema, out: Verified, pick: random.Random, share: float,
                     writers: Writers | None) -> Any:
    newest = None
    for sid in snapshot_ids(s):
        key = f"snapshots/{sid}.json"
        out.objects += 1
        try:
            manifest = read_manifest(s, sid)
            if s.team_id is not None:
                check_manifest_signature(manifest, writers, team=s.name)
        except (CorruptObject, FormatTooNew, ObjectMissing) as exc:
            out.problems.append(Problem(key, str(exc)))
            continue
        newest = manifest
        for n, (part, sha, _) in enumerate(manifest.parts, start=1):
            out.objects += 1
            try:
                if pick.random() < share:
                    body = s.remote.get(part, max_bytes=MAX_OBJECT)
                    out.read += 1
                    if sha256(body) != sha:
                        out.problems.append(Problem(part, "does not match its manifest (altered or truncated)"))
                        continue
                    check_scope(s.conn, decode_part(body, schema, where=part, manifest=manifest, n=n), s.team_id,
                                where=part)
                else:
                    stored = s.remote.head(part).sha256
                    # An encrypted part's stored hash is of its sealed bytes: presence is all a HEAD proves.
                    if stored is not None and s.keyring is None and stored != sha:
                        out.problems.append(Problem(part, "its stored hash does not match its manifest"))
            except ObjectMissing:
                out.problems.append(Problem(part, f"is named by manifest {key} but is gone"))
            except (CorruptObject, FormatTooNew) as exc:
                out.problems.append(Problem(part, str(exc)))
    return newest


def check_changeset(s: Session, schema: Schema, body: bytes, key: str, writers: Writers | None) -> None:
    """Every check a pull makes before applying (on a team library: the signature and the scope too)."""
    _, batch = decode_checked(body, schema, key, s.name if s.team_id is not None else None, writers)
    check_scope(s.conn, batch, s.team_id, where=key)


def _check_host(s: Session, schema: Schema, host: str, start: tuple[int, str | None], out: Verified,
                pick: random.Random, share: float, writers: Writers | None) -> int | None:
    """Walk one host's log; returns the seq its head names (None when the head is unreadable)."""
    try:
        head_seq, head_sha = s.read_head(host)
    except (CorruptObject, ObjectMissing) as exc:
        out.problems.append(Problem(f"heads/{host}.json", str(exc)))
        return None
    seq, expected = start
    store = s.store_id()
    for q in range(seq + 1, head_seq + 1):
        key = log_key(host, q)
        out.objects += 1
        last = q == head_seq
        try:
            if last or pick.random() < share:
                body = s.remote.get(key, max_bytes=MAX_OBJECT)
                out.read += 1
                header = peek_header(body, key)
                if (header.host, header.seq, header.store) != (host, q, store):
                    out.problems.append(Problem(key, f"does not belong there (names host {header.host}, "
                                                     f"changeset {header.seq})"))
                elif expected is not None and header.prev != expected:
                    out.problems.append(Problem(key, "breaks the hash chain: it or the one before was altered"))
                check_changeset(s, schema, body, key, writers)
                digest: str | None = sha256(body)
            else:
                digest = s.remote.head(key).sha256
                if s.keyring is not None:  # of the sealed bytes: it proves presence, not the chain
                    digest = None
        except ObjectMissing:
            what = "is missing: the head names it" if last else "is missing from the middle of the chain"
            out.problems.append(Problem(key, what + (" (the head is ahead of its log)" if last else "")))
            digest = None
        except (CorruptObject, FormatTooNew) as exc:
            out.problems.append(Problem(key, str(exc).removeprefix(key).strip(" :")))
            digest = None
        expected = digest
        if last and digest is not None and digest != head_sha:
            out.problems.append(Problem(key, f"does not match the head of host {host}"))
    return head_seq


def check_local(conn: sqlite3.Connection, remote: str | None) -> list[Problem]:
    """This database: SQLite's integrity, the full-text index, the capture triggers, the outbox."""
    found: list[Problem] = []
    verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
    if verdict != "ok":
        found.append(Problem("database", f"SQLite integrity check: {verdict}"))
    try:
        conn.execute("INSERT INTO responses_fts (responses_fts) VALUES ('integrity-check')")
    except sqlite3.Error as exc:
        found.append(Problem("responses_fts", f"the full-text index does not match the responses ({exc})"))
    have = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    for table in [*TABLES, None]:
        for name in re.findall(r"CREATE TRIGGER (\w+)", capture_sql(table)):
            if name not in have:
                found.append(Problem(name, "a capture trigger is missing: writes are not queued for push"))
    if remote is not None:
        stray = conn.execute(
            "SELECT count(*) FROM sync_changes WHERE tbl NOT IN "
            f"({', '.join(repr(t.name) for t in TABLES)}, 'tombstones')").fetchone()[0]
        if stray:
            found.append(Problem("sync_changes", f"{stray} queued keys name no synced table"))
    return found


def verify_session(s: Session, *, share: float = 0.0, local: bool = False, seed: int | None = None) -> Verified:
    """Walk the remote (and with ``local`` this database); ``share`` of objects (0 to 1) is read in full."""
    out = Verified(s.name)
    if s.keyring is not None and share == 0:
        # Only reading proves that an encrypted object opens under our key.
        share = 1.0
    pick = random.Random(seed)
    schema = Schema(s.conn, s.schema_version)
    listing = s.remote.list("heads/")
    s.store_id()
    writers = None
    if s.team_id is not None:
        out.objects += 1
        try:
            writers = membership.read_writers(s)
        except (CorruptObject, WrongKey, ObjectMissing) as exc:
            out.problems.append(Problem(WRITERS_KEY, str(exc)))
    newest = _check_snapshots(s, schema, out, pick, share, writers)
    floor = deleted_before(s)
    for key in sorted(listing):
        host = host_of_head(key)
        if host is None:
            continue
        start: tuple[int, str | None] = (floor.get(host, 0), None)
        if newest is not None and host in newest.covers and newest.covers[host][0] >= start[0]:
            start = newest.covers[host]
        head_seq = _check_host(s, schema, host, start, out, pick, share, writers)
        if host != s.host and head_seq is not None:
            out.not_applied_here += max(0, head_seq - s.chain(host).seq)
    out.not_pushed_yet = capture.pending_count(s.conn, s.name, tables=s.tables)
    if local:
        out.problems += check_local(s.conn, s.name)
    out.requests = s.remote.requests
    return out

