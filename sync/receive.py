"""Pull: fetch and apply the changesets other hosts pushed since last time.

1. LIST ``heads/`` (one request); skip our own host and every host whose head
   ETag is unchanged since last time.
2. For each changed host: GET its head, then GET each changeset not yet
   applied, by constructed key. Nothing ever lists ``log/``.
3. Check every changeset's sha256 against the hash chain, ending at the
   head's sha256, before applying any of that host's.
4. Apply each changeset in one transaction that also records it as applied.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from localfirst.errors import CorruptObject, RemoteError

from . import capture
from .apply import apply_ops
from .changeset import FormatTooNew, Schema, decode, peek_header, sha256
from .remotes import ObjectMissing
from .session import Chain, Session, check_own_head, host_of_head, log_key

__all__ = ["pull_session", "Pulled"]


def _fetch(s: Session, host: str, chain: Chain, head: tuple[int, str],
           spool: Path) -> list[tuple[int, str, Path]]:
    """The changesets after ``chain`` up to ``head``, checked against the hash chain.

    None can be applied before the whole chain up to the head checks out, so
    each is kept in a file under ``spool`` meanwhile, not in memory: a new
    machine may be pulling a long history with large attachments.
    """
    seq, head_sha = head
    out: list[tuple[int, str, Path]] = []
    prev = chain.sha256
    store = s.store_id()
    for q in range(chain.seq + 1, seq + 1):
        key = log_key(host, q)
        body = s.remote.get(key)
        header = peek_header(body, key)
        if header.host != host or header.seq != q or header.store != store:
            raise CorruptObject(f"{key} does not belong there (it names host {header.host}, changeset {header.seq})")
        if header.prev != prev:
            raise CorruptObject(f"{key} breaks the hash chain of host {host}: it was altered or replaced")
        prev = sha256(body)
        path = spool / f"{q:012d}"
        path.write_bytes(body)
        out.append((q, prev, path))
    if prev != head_sha:
        raise CorruptObject(
            f"the changesets of host {host} do not match its head (changeset {seq}): one was altered or replaced"
        )
    return out


def _apply(s: Session, schema: Schema, host: str, item: tuple[int, str, Path], chain: Chain) -> int:
    """Apply one changeset and record it, in one transaction; returns its row count."""
    q, sha, path = item
    body = path.read_bytes()
    if sha256(body) != sha:
        raise CorruptObject(f"the spooled copy of {log_key(host, q)} changed on disk; nothing of it was applied")
    _, ops = decode(body, schema, where=log_key(host, q))
    with s.store.write() as conn:
        with capture.guard(conn, "pull"):
            apply_ops(conn, ops, tables=schema.tables)
        s.save_chain(host, chain)
    return len(ops)


def pull_session(s: Session) -> Pulled:
    """Apply what is new from every host; what could not be applied is in ``errors``."""
    listing = s.remote.list("heads/")
    check_own_head(s, listing, s.chain(s.host))
    changed: list[tuple[str, str]] = []
    for key, etag in sorted(listing.items()):
        host = host_of_head(key)
        if host is None or host == s.host:
            continue
        if s.chain(host).head_etag != etag:
            changed.append((host, etag))
    if not changed:
        return Pulled(listing)
    s.store_id()
    schema = Schema(s.conn, s.schema_version)
    # Big pulls insert into several indexes: a larger page cache (64 MB,
    # this connection only) keeps them in memory.
    s.conn.execute("PRAGMA cache_size = -65536")
    result = Pulled(listing)
    for host, etag in changed:
        try:
            _pull_host(s, schema, host, etag, result)
        except ObjectMissing as exc:
            # A folder on a synced drive may get a head before the changesets
            # it names: nothing of that host is applied, the next sync retries.
            result.errors.append(RemoteError(f"{exc} (named by the head of host {host}; not copied there yet?)"))
        except (CorruptObject, FormatTooNew) as exc:
            # One bad host does not hold back the others; the error is raised
            # once every other host is applied (and, by sync, after the push).
            result.errors.append(exc)
    return result


@dataclass
class Pulled:
    listing: dict[str, str]
    hosts: int = 0
    changesets: int = 0
    rows: int = 0
    errors: list[RemoteError] = field(default_factory=list)


def _pull_host(s: Session, schema: Schema, host: str, etag: str, result: Pulled) -> None:
    chain = s.chain(host)
    head = s.read_head(host)
    if head[0] < chain.seq or (head[0] == chain.seq and head[1] != chain.sha256):
        raise CorruptObject(
            f"the head of host {host} went back from changeset {chain.seq} to {head[0]}, or was replaced"
        )
    with tempfile.TemporaryDirectory(prefix="localfirst-pull-") as spool:
        items = _fetch(s, host, chain, head, Path(spool))
        if not items:
            with s.store.write():
                s.save_chain(host, Chain(chain.seq, chain.sha256, head[0], etag))
            return
        result.hosts += 1
        for i, item in enumerate(items):
            last = i == len(items) - 1
            chain = Chain(item[0], item[1], head[0] if last else chain.head_seq, etag if last else chain.head_etag)
            result.rows += _apply(s, schema, host, item, chain)
            result.changesets += 1
            s.tick(result.changesets, result.changesets + len(items) - i - 1)
