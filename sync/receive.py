"""Pull: fetch and apply the changesets other hosts pushed since last time.

1. LIST ``heads/`` (one request); skip our own host and every host whose head
   ETag is unchanged since last time.
2. For each changed host: GET its head, then GET each changeset not yet
   applied, by constructed key. Nothing ever lists ``log/``.
3. A changeset is applied once the hash chain vouches for it: the next
   changeset names its sha256 as ``prev``, or, for the last one, the head
   does. So at most two changesets are held at a time, and an interrupted
   pull keeps every changeset it applied.
4. Apply each changeset in one transaction that also records it as applied.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from localfirst.errors import CorruptObject, FormatTooNew, RemoteError, WrongKey

from . import capture, membership
from .apply import Conflict, apply_checked
from .changeset import MAX_TEXT, Header, decode_lines, peek_header, read_header, sha256
from .check import Checked, Schema, Turns, no_pause
from .remotes import ObjectMissing
from .session import Chain, Session, check_own_head, head_key, host_of_head, log_key
from .snapshot import apply_snapshot, check_manifest_signature, in_order, manifest_key, newest
from .team import Writers, after_apply, before_apply, check_scope, check_signature

__all__ = ["pull_session", "Pulled", "MAX_OBJECT", "decode_checked"]

# The largest object a pull reads (a changeset is at most MAX_TEXT inflated;
# compressed it is never much larger).
MAX_OBJECT = MAX_TEXT + (1 << 20)
# A pull this many changesets behind looks for a snapshot first.
BOOTSTRAP_AFTER = 20


@dataclass
class Pulled:
    listing: dict[str, str]
    hosts: int = 0
    changesets: int = 0
    rows: int = 0
    errors: list[RemoteError] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    snapshot: str | None = None  # the snapshot this pull started from
    writers: Writers | None = None  # a team library's writer list, as checked at the start of this pull


def decode_checked(body: bytes, schema: Schema, key: str, team: str | None, writers: Writers | None, *,
                   pause: Callable[[], None] = no_pause) -> tuple[Header, Checked]:
    """Every check of one changeset (on a team library, ``team``: its signature first)."""
    header, lines = read_header(body, key)
    if team is not None:
        check_signature(header, lines, writers, where=key, team=team)
    return header, decode_lines(lines, schema, where=key, newer=header.schema > schema.version, pause=pause)


def _apply(s: Session, host: str, q: int, decoded: Future[tuple[Header, Checked]], chain: Chain,
           result: Pulled, turns: Turns) -> None:
    """Apply one changeset, once decoded and checked, and record it, in one transaction."""
    key = log_key(host, q)
    header, batch = decoded.result()  # raises what the check found, before anything is written
    signer = header.writer if s.team_id is not None else None
    if signer is not None:
        bound = s.conn.execute("SELECT signer FROM sync_signers WHERE remote = ? AND host = ? AND signer != ? LIMIT 1",
                               [s.name, host, signer]).fetchone()
        if bound:
            raise CorruptObject(f"{key}: changeset {q} of host {host} is signed by {signer}, and that host's "
                                f"changesets by {bound[0]}: a writer may not write under another's host; "
                                "it was refused")
    with s.store.write() as conn:
        check_scope(conn, batch, s.team_id, where=key)
        before_apply(conn, batch, s.team_id)
        with capture.guard(conn, "pull"):
            applier = apply_checked(conn, batch, source=key, turns=turns)
        after_apply(conn, batch, s.team_id)
        if signer is not None:
            conn.execute("INSERT OR IGNORE INTO sync_signers (remote, host, signer) VALUES (?, ?, ?)",
                         [s.name, host, signer])
        s.save_chain(host, chain)
    result.rows += len(batch)
    result.changesets += 1
    result.conflicts += applier.conflicts


class _Gap(Exception):
    """Changeset ``seq`` of ``host`` is not on the remote."""

    def __init__(self, host: str, seq: int, missing: ObjectMissing) -> None:
        super().__init__(str(missing))
        self.host, self.seq, self.missing = host, seq, missing


def _pull_host(s: Session, schema: Schema, host: str, etag: str, head: tuple[int, str], result: Pulled) -> None:
    chain = s.chain(host)
    head_seq, head_sha = head
    if head_seq < chain.seq or (head_seq == chain.seq and head_sha != chain.sha256):
        raise CorruptObject(
            f"the head of host {host} went back from changeset {chain.seq} to {head_seq}, or was replaced"
        )
    if head_seq == chain.seq:
        with s.store.write():
            s.save_chain(host, Chain(chain.seq, chain.sha256, head_seq, etag))
        return
    result.hosts += 1

    def fetch(key: str) -> bytes:
        return s.remote.get(key, max_bytes=MAX_OBJECT)

    # A removed writer's host: what stays valid ends at a pinned changeset (seq, sha256). Nothing
    # of it is applied before the chain is seen to reach exactly that changeset.
    pin = result.writers.pins().get(host) if s.team_id is not None and result.writers is not None else None
    if pin is not None and chain.seq < pin[0] and head_seq < pin[0]:
        raise CorruptObject(f"the head of host {host} names changeset {head_seq}, before the changeset {pin[0]} the "
                            "writer list pins for it: its history was cut or rewritten after its writer was removed")
    seqs = range(chain.seq + 1, head_seq + 1)
    fetched = in_order((log_key(host, q) for q in seqs), fetch)
    # A changeset is decoded and checked in a thread of its own while the one
    # before it is applied (SQLite lets go of the GIL while it writes); it is
    # applied only once the chain vouches for it and its check has passed.
    # The fetching generator is closed here, not by the garbage collector: finalised at a
    # random moment (in another thread's start-up, say) it would wait for its fetch threads
    # while holding a lock. The turns are left before the decoder is waited for: an applier
    # interrupted while it held the checker back lets it go.
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="localfirst-decode") as decoder, \
                Turns() as turns:
            _pull_chain(s, schema, host, etag, head, chain, seqs, fetched, decoder, turns, result, pin)
    finally:
        fetched.close()


def _pull_chain(s: Session, schema: Schema, host: str, etag: str, head: tuple[int, str], chain: Chain,
                seqs: range, fetched: Iterator[tuple[str, bytes]], decoder: ThreadPoolExecutor, turns: Turns,
                result: Pulled, pin: tuple[int, str] | None) -> None:
    head_seq, head_sha = head
    store = s.store_id()
    team = s.name if s.team_id is not None else None
    held: tuple[int, str, Future[tuple[Header, Checked]]] | None = None  # fetched, not yet vouched for
    waiting: list[tuple[int, str, Future[tuple[Header, Checked]]]] = []  # vouched for, not yet pinned
    verified = pin is None or chain.seq >= pin[0]
    prev = chain.sha256
    for q in seqs:
        key = log_key(host, q)
        try:
            _, body = next(fetched)
        except ObjectMissing as exc:
            raise _Gap(host, q, exc) from exc
        header = peek_header(body, key)
        if header.host != host or header.seq != q or header.store != store:
            raise CorruptObject(f"{key} does not belong there (it names host {header.host}, changeset {header.seq})")
        if header.prev != prev:
            raise CorruptObject(f"{key} breaks the hash chain of host {host}: it or the one before was altered "
                                "or replaced")
        decoded = decoder.submit(decode_checked, body, schema, key, team, result.writers, pause=turns.pause)
        if held is not None:
            if verified:
                _apply(s, host, held[0], held[2], Chain(held[0], held[1], chain.head_seq, chain.head_etag), result,
                       turns)
                s.tick(result.changesets, result.changesets + head_seq - q + 1)
            else:
                waiting.append(held)
        prev = sha256(body)
        held = (q, prev, decoded)
        if pin is not None and q == pin[0]:
            if prev != pin[1]:
                raise CorruptObject(f"{key} is not the changeset the writer list pins for host {host}: it was "
                                    "rewritten after its writer was removed, and nothing of that host was applied")
            verified = True
            for w in waiting:
                _apply(s, host, w[0], w[2], Chain(w[0], w[1], chain.head_seq, chain.head_etag), result, turns)
            waiting = []
    if held is None or prev != head_sha:
        raise CorruptObject(
            f"the changesets of host {host} do not match its head (changeset {head_seq}): one was altered or replaced"
        )
    _apply(s, host, held[0], held[2], Chain(held[0], held[1], head_seq, etag), result, turns)
    s.tick(result.changesets, result.changesets)


def _bootstrap(s: Session, schema: Schema, result: Pulled, heads: dict[str, tuple[int, str]], *,
               needs: tuple[str, int] | None = None) -> bool:
    """Apply the newest snapshot when it moves this store forward; whether it was applied.

    ``needs`` is (host, seq) of a changeset that is gone: the snapshot must cover it.
    """
    manifest = newest(s)
    if manifest is None:
        return False
    if s.team_id is not None:
        check_manifest_signature(manifest, result.writers, team=s.name)
    for host, (seq, _) in manifest.covers.items():
        head = heads[host][0] if host in heads else s.chain(host).head_seq
        if host != s.host and (head_key(host) not in result.listing or seq > head):
            raise CorruptObject(f"{manifest_key(manifest.id)} names changeset {seq} of host {host}, which its "
                                f"head does not (it is at {head}): the snapshot contradicts the log")
    if needs is not None:
        host, seq = needs
        if manifest.covers.get(host, (0, ""))[0] < seq:
            return False
    elif not any(s.chain(h).seq < q for h, (q, _) in manifest.covers.items() if h != s.host):
        return False
    result.rows += apply_snapshot(s, schema, manifest)
    result.snapshot = manifest.id
    from .compaction import remember_cut

    remember_cut(s, manifest.covers)
    return True


def pull_session(s: Session) -> Pulled:
    """Apply what is new from every host; what could not be applied is in ``errors``."""
    listing = s.remote.list("heads/")
    check_own_head(s, listing, s.chain(s.host))
    writers: Writers | None = None
    errors: list[RemoteError] = []
    if s.team_id is not None:
        # Read again only when the LIST shows it changed; a bad one is reported, and the list
        # kept here (if any) still vouches for the writers it names.
        try:
            writers = membership.writers(s, listing)
        except (CorruptObject, WrongKey) as exc:
            errors.append(exc)
            writers = membership.cached_writers(s.conn, s.config)[0]
    changed: list[tuple[str, str]] = []
    for key, etag in sorted(listing.items()):
        host = host_of_head(key)
        if host is None or host == s.host:
            continue
        if s.chain(host).head_etag != etag:
            changed.append((host, etag))
    if not changed:
        return Pulled(listing, errors=errors, writers=writers)
    _remove_debris()
    s.store_id()
    schema = Schema(s.conn, s.schema_version)
    server = s.remote.server_time()
    if server is not None:
        # A machine whose clock is behind judges other hosts' edits by the
        # remote's clock instead, so it does not refuse them as "from the future".
        schema.now_ms = max(time.time_ns() // 1_000_000, int(server * 1000))
    result = Pulled(listing, errors=errors, writers=writers)
    with _tuned_for_bulk(s.conn):
        _pull_changed(s, schema, changed, result)
    return result


@contextmanager
def _tuned_for_bulk(conn: sqlite3.Connection) -> Iterator[None]:
    """This connection's settings for applying many rows, for the length of a pull.

    A larger page cache (64 MB) keeps the indexes a big pull inserts into in
    memory, and the applier's staging tables (a changeset's rows at most)
    stay in memory too, not in a temporary file written and read back. Both
    are put back afterwards; changing ``temp_store`` drops every temporary
    table, and the applier makes its own again each time.
    """
    cache = int(conn.execute("PRAGMA cache_size").fetchone()[0])
    temp = int(conn.execute("PRAGMA temp_store").fetchone()[0])
    conn.execute("PRAGMA cache_size = -65536")
    conn.execute("PRAGMA temp_store = MEMORY")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA cache_size = {cache}")
        conn.execute(f"PRAGMA temp_store = {temp}")


def _pull_changed(s: Session, schema: Schema, changed: list[tuple[str, str]], result: Pulled) -> None:
    """Pull every host in ``changed`` (host, head ETag) into ``result``."""
    heads: dict[str, tuple[int, str]] = {}
    for host, _ in changed:
        try:
            heads[host] = s.read_head(host)
        except (CorruptObject, ObjectMissing) as exc:
            result.errors.append(exc if isinstance(exc, CorruptObject) else RemoteError(str(exc)))
    # Far behind (a new machine, or one long offline): start from the newest
    # snapshot, then pull the tail. One LIST when there is none.
    behind = sum(max(0, q - s.chain(h).seq) for h, (q, _) in heads.items())
    try:
        bootstrapped = behind > BOOTSTRAP_AFTER and _bootstrap(s, schema, result, heads)
    except (CorruptObject, FormatTooNew) as exc:
        # A damaged snapshot: report it, and replay the log instead where it is still there.
        result.errors.append(exc)
        bootstrapped = True
    for host, etag in changed:
        if host not in heads:
            continue
        try:
            try:
                _pull_host(s, schema, host, etag, heads[host], result)
            except _Gap as gap:
                # Compacted away while this machine was offline: the snapshot
                # that covers it, then the rest.
                if bootstrapped or not _bootstrap(s, schema, result, heads, needs=(gap.host, gap.seq)):
                    raise gap.missing from None
                bootstrapped = True
                _pull_host(s, schema, host, etag, heads[host], result)
        except (ObjectMissing, _Gap) as exc:
            # A folder on a synced drive may get a head before the changesets
            # it names: what came before is applied, the next sync goes on.
            result.errors.append(RemoteError(f"{exc} (named by the head of host {host}; not copied there yet, "
                                             "or compacted away with no snapshot that covers it)"))
        except (CorruptObject, FormatTooNew) as exc:
            # One bad host does not hold back the others; the error is raised
            # once every other host is applied (and, by sync, after the push).
            result.errors.append(exc)


def _remove_debris(max_age: float = 3600) -> None:
    """Remove spool folders that pulls of earlier versions left behind when they were killed."""
    root = Path(tempfile.gettempdir())
    try:
        entries = list(os.scandir(root))
    except OSError:
        return
    cutoff = time.time() - max_age
    for entry in entries:
        if entry.name.startswith("localfirst-pull-"):
            try:
                if entry.is_dir(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    shutil.rmtree(entry.path, ignore_errors=True)
            except OSError:
                continue
