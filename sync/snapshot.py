"""Snapshots: the merged state of a consistent cut of the log, for bootstrapping.

    snapshots/<id>.json                   the manifest, written LAST: a snapshot exists once it does
    snapshots/<id>/part-<n>.jsonl.gz      the rows, each part a gzip of JSON Lines under the size cap

A snapshot holds what a replay of every changeset up to ``covers[host]``
gives: live rows with their LWW clocks, and tombstones; no row a tombstone
covers. Its parts use the changeset's operation lines, and applying one is a
merge like any other (:mod:`sync.apply`), so applying a snapshot to a store
that holds part of the history is safe, and applying it twice changes
nothing. The manifest is listed directly under ``snapshots/``, so finding
the newest snapshot is one LIST.
"""

from __future__ import annotations

import gzip
import json
import re
import sqlite3
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, replace
from itertools import islice
from typing import Any

from localfirst import ids
from localfirst.errors import CorruptObject, FormatTooNew
from localfirst.registry import TABLES
from localfirst.timeutil import now_utc

from . import capture
from .apply import apply_checked
from .changeset import FORMAT, MAX_ROWS, MAX_TEXT, decode_lines, op_line, sha256, text_lines
from .check import Schema, Turns, no_pause
from .remotes import ObjectExists
from .session import Chain, Session
from .team import SNAPSHOT_DOMAIN, Writers, after_apply, before_apply, check_scope, sign_bytes, verify_bytes

__all__ = [
    "Manifest", "manifest_key", "part_key", "snapshot_ids", "newest", "write_snapshot", "apply_snapshot",
    "in_order", "FETCH_WINDOW", "check_manifest_signature",
]

MANIFEST_TYPE = "localfirst-snapshot"
PART_TYPE = "localfirst-snapshot-part"
# Parts are cut well under the cap a reader accepts.
PART_TEXT = MAX_TEXT // 2
PART_ROWS = MAX_ROWS // 2
# How many objects a pull fetches at once (boto3 clients are thread-safe).
FETCH_WINDOW = 8
_ID = r"[0-7][0-9a-hjkmnp-tv-z]{25}"
_MANIFEST = re.compile(rf"^snapshots/({_ID})\.json$")
_SHA = re.compile(r"^[0-9a-f]{64}$")


def manifest_key(sid: str) -> str:
    return f"snapshots/{sid}.json"


def part_key(sid: str, n: int) -> str:
    return f"snapshots/{sid}/part-{n:06d}.jsonl.gz"


@dataclass(frozen=True)
class Manifest:
    id: str
    store: str
    created_utc: str
    schema: int
    covers: dict[str, tuple[int, str]]
    parts: tuple[tuple[str, str, int], ...]  # (key, sha256, rows)
    #: on a team library: the writer key that signed the manifest (and so its parts), and the signature
    writer: str | None = None
    sig: str | None = None

    def to_bytes(self) -> bytes:
        doc: dict[str, Any] = {
            "type": MANIFEST_TYPE, "format": FORMAT, "id": self.id, "store": self.store,
            "created_utc": self.created_utc, "schema": self.schema,
            "covers": {h: {"seq": q, "sha256": sha} for h, (q, sha) in sorted(self.covers.items())},
            "parts": [{"key": k, "sha256": sha, "rows": n} for k, sha, n in self.parts],
        }
        if self.writer is not None:
            doc["writer"] = self.writer
        if self.sig is not None:
            doc["sig"] = self.sig
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @property
    def rows(self) -> int:
        return sum(n for _, _, n in self.parts)

    @classmethod
    def parse(cls, data: bytes, *, where: str, store: str, sid: str) -> Manifest:
        """A manifest from the remote, checked field by field."""
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise CorruptObject(f"{where} is damaged: not JSON") from exc
        if not isinstance(doc, dict) or doc.get("type") != MANIFEST_TYPE:
            raise CorruptObject(f"{where} is not a snapshot manifest")
        fmt = doc.get("format")
        if type(fmt) is int and fmt > FORMAT:
            raise FormatTooNew(f"{where} uses sync format {fmt}; upgrade localfirst to read it")
        try:
            covers = {}
            for host, at in doc["covers"].items():
                seq, sha = at["seq"], at["sha256"]
                if not (ids.is_id(host) and host == host.lower() and type(seq) is int and 0 < seq < 10**12
                        and isinstance(sha, str) and _SHA.fullmatch(sha)):
                    raise ValueError(host)
                covers[host] = (seq, sha)
            parts = []
            for n, part in enumerate(doc["parts"], start=1):
                key, sha, rows = part["key"], part["sha256"], part["rows"]
                if key != part_key(sid, n) or not (isinstance(sha, str) and _SHA.fullmatch(sha)) \
                        or type(rows) is not int or not 0 <= rows <= MAX_ROWS:
                    raise ValueError(key)
                parts.append((key, sha, rows))
            writer, sig = doc.get("writer"), doc.get("sig")
            if not (writer is None or isinstance(writer, str)) or not (sig is None or isinstance(sig, str)):
                raise ValueError("writer")
            manifest = cls(doc["id"], doc["store"], doc["created_utc"], doc["schema"], covers, tuple(parts),
                           writer, sig)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CorruptObject(f"{where} is damaged: a field is missing or malformed") from exc
        if manifest.id != sid or manifest.store != store or type(manifest.schema) is not int \
                or not isinstance(manifest.created_utc, str):
            raise CorruptObject(f"{where} does not belong there (it names snapshot {manifest.id!r})")
        return manifest


def check_manifest_signature(manifest: Manifest, writers: Writers | None, *, team: str) -> None:
    """Refuse a team library's snapshot that a writer on its list did not sign (its parts are named by hash)."""
    where = manifest_key(manifest.id)
    if manifest.writer is None or manifest.sig is None:
        raise CorruptObject(f"{where} is not signed; team {team!r} takes only what its writers signed: "
                            "it was refused")
    if writers is None or not writers.signed_snapshot(manifest.writer, manifest.id):
        raise CorruptObject(f"{where} is signed by {manifest.writer}, which is not on the writer list of team "
                            f"{team!r}: it was refused")
    if not verify_bytes(manifest.writer, manifest.sig, SNAPSHOT_DOMAIN, replace(manifest, sig=None).to_bytes()):
        raise CorruptObject(f"{where} does not match its signature (altered after it was signed): it was refused")


def snapshot_ids(s: Session) -> list[str]:
    """The ids of the snapshots on the remote, oldest first (one LIST)."""
    found = []
    for key in s.remote.list("snapshots/"):
        m = _MANIFEST.fullmatch(key)
        if m:
            found.append(m.group(1))
    return sorted(found)


def read_manifest(s: Session, sid: str) -> Manifest:
    key = manifest_key(sid)
    return Manifest.parse(s.remote.get(key, max_bytes=1 << 24), where=key, store=s.store_id(), sid=sid)


def newest(s: Session) -> Manifest | None:
    """The newest snapshot's manifest, or None when the remote has none."""
    found = snapshot_ids(s)
    return read_manifest(s, found[-1]) if found else None


def _dump(conn: sqlite3.Connection, schema: Schema) -> Iterator[str]:
    """Every tombstone, then every row table by table in key order, as operation lines."""
    for tbl, key, stamp in conn.execute("SELECT tbl, key, hlc FROM tombstones ORDER BY tbl, key"):
        yield op_line(("del", tbl, None, key, stamp))
    for table in TABLES:
        cols = schema.columns[table.name]
        if table.name not in schema.tables or not cols:
            continue
        cur = conn.execute(f"SELECT {', '.join(cols)} FROM {table.name} ORDER BY {', '.join(table.key)}")
        while rows := cur.fetchmany(2000):
            for row in rows:
                yield op_line((table.op, table.name, dict(zip(cols, row, strict=True)), None, None))


def _parts(lines: Iterable[str]) -> Iterator[list[str]]:
    part: list[str] = []
    size = 0
    for line in lines:
        if part and (size + len(line) > PART_TEXT or len(part) >= PART_ROWS):
            yield part
            part, size = [], 0
        part.append(line)
        size += len(line.encode()) + 1
    if part:
        yield part


def _encode_part(store: str, sid: str, n: int, schema: int, lines: list[str]) -> bytes:
    header = {"type": PART_TYPE, "format": FORMAT, "store": store, "snapshot": sid, "part": n, "schema": schema,
              "rows": len(lines)}
    text = "\n".join([json.dumps(header, sort_keys=True, separators=(",", ":")), *lines]) + "\n"
    return gzip.compress(text.encode(), compresslevel=6, mtime=0)


def decode_part(data: bytes, schema: Schema, *, where: str, manifest: Manifest, n: int,
                pause: Callable[[], None] = no_pause) -> Any:
    """One part, checked like a changeset (and against its manifest) before any of it is applied."""
    lines = text_lines(data, where)
    try:
        header = json.loads(lines[0]) if lines else None
    except (ValueError, RecursionError) as exc:
        raise CorruptObject(f"{where} is damaged: its header is not JSON") from exc
    if not isinstance(header, dict) or header.get("type") != PART_TYPE:
        raise CorruptObject(f"{where} is not a snapshot part")
    if (header.get("store"), header.get("snapshot"), header.get("part")) != (manifest.store, manifest.id, n):
        raise CorruptObject(f"{where} does not belong there")
    if header.get("rows") != len(lines) - 1 or len(lines) - 1 > MAX_ROWS:
        raise CorruptObject(f"{where} is truncated or holds more rows than it says")
    schema_of = header.get("schema")
    newer = type(schema_of) is int and schema_of > schema.version
    return decode_lines(lines[1:], schema, where=where, newer=newer, pause=pause)


def write_snapshot(s: Session, source: sqlite3.Connection, covers: dict[str, tuple[int, str]]) -> Manifest:
    """Write the state of ``source`` (a replay of the log up to ``covers``) as a new snapshot.

    Parts first, create-only; the manifest last, so a snapshot is whole
    before anyone can see it.
    """
    sid = ids.new_id()
    store = s.store_id()
    schema = Schema(source, s.schema_version)
    parts = []
    for n, lines in enumerate(_parts(_dump(source, schema)), start=1):
        body = _encode_part(store, sid, n, s.schema_version, lines)
        key = part_key(sid, n)
        digest = sha256(body)
        s.remote.put(key, body, sha256=digest, create_only=True)
        parts.append((key, digest, len(lines)))
    manifest = Manifest(sid, store, now_utc(), s.schema_version, dict(covers), tuple(parts))
    if s.team_id is not None:
        keys = s.team_keys()
        manifest = replace(manifest, writer=keys.writer_key)
        manifest = replace(manifest, sig=sign_bytes(keys.writer, SNAPSHOT_DOMAIN, manifest.to_bytes()))
    body = manifest.to_bytes()
    try:
        s.remote.put(manifest_key(sid), body, sha256=sha256(body), create_only=True)
    except ObjectExists as exc:  # a new ULID: only a broken clock and a twin could do this
        raise CorruptObject(f"{manifest_key(sid)} already exists; nothing was overwritten") from exc
    return manifest


def in_order(keys: Iterable[str], fetch: Callable[[str], bytes], *, window: int | None = None
             ) -> Generator[tuple[str, bytes], None, None]:
    """Fetch ``keys`` with up to ``window`` (default FETCH_WINDOW) requests in flight; yield them in order."""
    window = window or FETCH_WINDOW
    it = iter(keys)
    with ThreadPoolExecutor(max_workers=window, thread_name_prefix="localfirst-fetch") as pool:
        pending: deque[tuple[str, Future[bytes]]] = deque((k, pool.submit(fetch, k)) for k in islice(it, window))
        try:
            while pending:
                key, future = pending.popleft()
                data = future.result()
                following = next(it, None)
                if following is not None:
                    pending.append((following, pool.submit(fetch, following)))
                yield key, data
        finally:
            for _, future in pending:
                future.cancel()


def _apply_part(s: Session, key: str, batch: Any, turns: Turns) -> int:
    """Apply one checked part in a transaction of its own; the rows it held."""
    with s.store.write() as conn:
        check_scope(conn, batch, s.team_id, where=key)
        before_apply(conn, batch, s.team_id)
        with capture.guard(conn, "snapshot"):
            apply_checked(conn, batch, source=key, turns=turns)
        after_apply(conn, batch, s.team_id)
    return len(batch)


def apply_snapshot(s: Session, schema: Schema, manifest: Manifest, *, on_part: Callable[[int], None] | None = None
                   ) -> int:
    """Apply a snapshot's parts (each in its own transaction), then move every host's watermark to its cut.

    Returns the rows applied. Our own host's place in the log is never moved
    by a snapshot.
    """
    rows = 0

    def fetch(key: str) -> bytes:
        return s.remote.get(key, max_bytes=MAX_TEXT + (1 << 20))

    expected = {k: (sha, n) for n, (k, sha, _) in enumerate(manifest.parts, start=1)}

    def check(key: str, body: bytes) -> Any:
        sha, n = expected[key]
        if sha256(body) != sha:
            raise CorruptObject(f"{key} does not match its manifest: it was altered, truncated or replaced")
        return decode_part(body, schema, where=key, manifest=manifest, n=n, pause=turns.pause)

    def apply(checked: tuple[str, Future[Any]]) -> None:
        nonlocal rows
        rows += _apply_part(s, checked[0], checked[1].result(), turns)
        if on_part is not None:
            on_part(rows)

    # As a pull does with changesets: a part is checked in a thread of its own
    # while the one before it is applied (SQLite lets go of the GIL while it
    # writes; see check.Turns); each is applied, in order, only once its own
    # check has passed.
    # Closed on the way out, not left to the garbage collector (see receive._pull_host);
    # the turns are left first, so that the decoder is never waited for while held back.
    with closing(in_order([k for k, _, _ in manifest.parts], fetch)) as parts, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="localfirst-decode") as decoder, \
            Turns() as turns:
        held: tuple[str, Future[Any]] | None = None
        while True:
            try:
                key, body = next(parts)
            except StopIteration:
                break
            except Exception:
                # A part that cannot be fetched ends the bootstrap; the one before it was
                # fetched whole, and is applied first, as every part before a bad one is.
                if held is not None:
                    apply(held)
                raise
            following = (key, decoder.submit(check, key, body))
            if held is not None:
                apply(held)
            held = following
        if held is not None:
            apply(held)
    with s.store.write():
        for host, (seq, sha) in manifest.covers.items():
            if host == s.host:
                continue
            chain = s.chain(host)
            if chain.seq < seq:
                # The head is read again next time: it may lie ahead of the cut.
                s.save_chain(host, Chain(seq, sha, chain.head_seq, None))
    return rows
