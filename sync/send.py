"""Push: send this host's queued writes as the next changesets of its log.

1. Build a changeset from the outbox, with seq = last + 1, and save its
   exact bytes in a pending row, in one transaction.
2. Create ``log/<host>/<seq>`` (create-only). Already there with the same
   sha256: an earlier attempt of ours got there, go on. With another sha256:
   another machine uses this host id; stop, overwrite nothing.
3. In one transaction: clear the outbox rows sent and the pending row, and
   advance the local seq.
4. When the log is ahead of the head, write ``heads/<host>.json``
   (compare-and-swap on its ETag).

A crash anywhere loses nothing and leaves no gap or duplicate: the next push
resumes from the pending row, whose bytes are identical.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from localfirst.errors import RemoteError

from . import capture
from .changeset import Header, encode, sha256
from .collect import collect
from .remotes import ObjectExists, PreconditionFailed
from .session import Session, check_own_head, fork_error, head_key, log_key

__all__ = ["push_session", "MAX_KEYS"]

# Keys per changeset (each key is one row, plus the attachments it carries),
# and the size above which a changeset is built again with fewer keys.
MAX_KEYS = 5000
MAX_BYTES = 32_000_000


@dataclass(frozen=True)
class Pending:
    host: str
    seq: int
    sha256: str
    outbox_max: int
    rows: int
    body: bytes


def _next(s: Session) -> Pending | None:
    """The pending changeset, or the next one built from the oldest queued keys.

    Everything is read inside one write transaction, so two pushes of one
    store at the same time (a scheduled sync and a manual one) build one
    changeset per seq and send the same bytes.
    """
    store_id = s.store_id()
    limit = MAX_KEYS
    while True:
        with s.store.write() as conn:
            row = conn.execute(
                "SELECT host, seq, sha256, outbox_max, rows, body FROM sync_pending WHERE remote = ?", [s.name]
            ).fetchone()
            if row is not None and row[0] == s.host:
                return Pending(*row)
            # Built under a host id this store no longer uses: its rows are still queued.
            conn.execute("DELETE FROM sync_pending WHERE remote = ?", [s.name])
            batch = capture.outbox_batch(conn, s.name, limit=limit)
            if not batch:
                return None
            ops = collect(conn, batch)
            if not ops:
                # Every queued row is gone without a tombstone: nothing to say.
                conn.execute("DELETE FROM sync_outbox WHERE remote = ? AND id <= ?", [s.name, batch.max_id])
                continue
            chain = s.chain(s.host)
            header = Header(
                store=store_id, host=s.host, seq=chain.seq + 1, prev=chain.sha256,
                schema=s.schema_version, rows=len(ops),
            )
            body = encode(header, ops)
            if len(body) > MAX_BYTES and limit > 1:
                # Large attachments: fewer rows in this changeset.
                limit = max(1, limit // 4)
                continue
            pending = Pending(s.host, header.seq, sha256(body), batch.max_id, len(ops), body)
            conn.execute(
                "INSERT INTO sync_pending (remote, host, seq, sha256, outbox_max, rows, body) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [s.name, pending.host, pending.seq, pending.sha256, pending.outbox_max, pending.rows, body],
            )
            return pending


def _send(s: Session, p: Pending) -> None:
    key = log_key(p.host, p.seq)
    try:
        s.remote.put(key, p.body, sha256=p.sha256, create_only=True)
    except ObjectExists:
        info = s.remote.head(key)
        if info.sha256 != p.sha256:
            raise fork_error(s.config, p.host, f"{key} already exists with other content") from None


def _done(s: Session, p: Pending) -> None:
    """Record ``p`` as sent, unless another push of this store already did."""
    with s.store.write() as conn:
        mine = conn.execute(
            "DELETE FROM sync_pending WHERE remote = ? AND seq = ? AND sha256 = ?", [s.name, p.seq, p.sha256]
        ).rowcount
        if mine:
            conn.execute("DELETE FROM sync_outbox WHERE remote = ? AND id <= ?", [s.name, p.outbox_max])
            s.advance(p.host, p.seq, p.sha256)


def _write_head(s: Session) -> None:
    """Point our head at our latest changeset, compare-and-swap on its ETag."""
    for _ in range(3):
        chain = s.chain(s.host)
        if chain.head_seq >= chain.seq:
            return
        body = json.dumps({"host": s.host, "seq": chain.seq, "sha256": chain.sha256}, sort_keys=True).encode()
        try:
            etag = s.remote.put(
                head_key(s.host), body, sha256=sha256(body),
                create_only=chain.head_etag is None, if_match=chain.head_etag,
            )
        except (ObjectExists, PreconditionFailed) as exc:
            # Our own earlier attempt, or another push of this store, may have
            # written it; anything ahead of what we pushed is another machine.
            seq, sha = s.read_head(s.host)
            now = s.chain(s.host)
            if seq > now.seq or (seq == now.seq and sha != now.sha256):
                raise fork_error(s.config, s.host, f"{head_key(s.host)} changed while pushing") from exc
            etag = s.remote.head(head_key(s.host)).etag
            with s.store.write():
                s.saw_head(s.host, seq, etag)
            continue
        with s.store.write():
            s.saw_head(s.host, chain.seq, etag)
        return
    raise RemoteError(f"{head_key(s.host)} keeps changing while pushing; try again")


def push_session(s: Session, listing: dict[str, str] | None = None) -> tuple[int, int]:
    """Push everything queued; returns (changesets, rows) sent.

    ``listing`` is the LIST of ``heads/`` a pull just made, so a sync does
    not list twice.
    """
    chain = s.chain(s.host)
    pending = s.conn.execute("SELECT 1 FROM sync_pending WHERE remote = ?", [s.name]).fetchone()
    if pending is None and capture.pending_count(s.conn, s.name) == 0 and chain.head_seq >= chain.seq:
        return 0, 0
    s.store_id()
    if listing is None:
        listing = s.remote.list("heads/")
    check_own_head(s, listing, chain)
    sent = rows = 0
    total = capture.pending_count(s.conn, s.name)
    while (p := _next(s)) is not None:
        _send(s, p)
        _done(s, p)
        sent += 1
        rows += p.rows
        s.tick(rows, max(total, rows))
    _write_head(s)
    return sent, rows
