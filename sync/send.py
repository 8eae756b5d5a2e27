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
from .session import Chain, Session, fork_error, head_key, log_key

__all__ = ["push_session", "MAX_KEYS"]

# Keys per changeset (each key is one row, plus the attachments it carries),
# and the size above which a changeset is built again with fewer keys.
MAX_KEYS = 5000
MAX_BYTES = 32_000_000


@dataclass
class Pending:
    host: str
    seq: int
    sha256: str
    outbox_max: int
    rows: int
    body: bytes


def _pending(s: Session) -> Pending | None:
    row = s.conn.execute(
        "SELECT host, seq, sha256, outbox_max, rows, body FROM sync_pending WHERE remote = ?", [s.name]
    ).fetchone()
    return Pending(*row) if row else None


def _build(s: Session, chain: Chain) -> Pending | None:
    """Turn the oldest queued keys into the next changeset, saved as pending."""
    store_id = s.store_id()
    limit = MAX_KEYS
    while True:
        with s.store.write() as conn:
            batch = capture.outbox_batch(conn, s.name, limit=limit)
            if not batch:
                return None
            ops = collect(conn, batch)
            if not ops:
                # Every queued row is gone without a tombstone: nothing to say.
                conn.execute("DELETE FROM sync_outbox WHERE remote = ? AND id <= ?", [s.name, batch.max_id])
                continue
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


def _check_own_head(s: Session, listing: dict[str, str], chain: Chain) -> Chain:
    """Stop before writing if someone else has moved this host's head."""
    etag = listing.get(head_key(s.host))
    if etag is None:
        if chain.head_seq > 0:
            raise RemoteError(
                f"remote {s.name!r} no longer holds this host's head {head_key(s.host)} (was it emptied?). "
                f"To push everything again: `localfirst remote remove {s.name}` then `localfirst remote add`"
            )
        return chain
    if etag == chain.head_etag:
        return chain
    seq, sha = s.read_head(s.host)
    if seq > chain.seq or (seq == chain.seq and sha != chain.sha256):
        raise fork_error(s.config, s.host, f"{head_key(s.host)} is at changeset {seq}, this machine at {chain.seq}")
    # Our own head, written by an attempt that stopped before recording it.
    chain = Chain(chain.seq, chain.sha256, seq, etag)
    with s.store.write():
        s.save_chain(s.host, chain)
    return chain


def _send(s: Session, p: Pending) -> None:
    key = log_key(p.host, p.seq)
    try:
        s.remote.put(key, p.body, sha256=p.sha256, create_only=True)
    except ObjectExists:
        info = s.remote.head(key)
        if info.sha256 != p.sha256:
            raise fork_error(s.config, p.host, f"{key} already exists with other content") from None


def _done(s: Session, p: Pending, chain: Chain) -> Chain:
    chain = Chain(p.seq, p.sha256, chain.head_seq, chain.head_etag)
    with s.store.write() as conn:
        conn.execute("DELETE FROM sync_outbox WHERE remote = ? AND id <= ?", [s.name, p.outbox_max])
        conn.execute("DELETE FROM sync_pending WHERE remote = ?", [s.name])
        s.save_chain(p.host, chain)
    return chain


def _write_head(s: Session, chain: Chain) -> Chain:
    body = json.dumps({"host": s.host, "seq": chain.seq, "sha256": chain.sha256}, sort_keys=True).encode()
    digest = sha256(body)
    try:
        etag = s.remote.put(
            head_key(s.host), body, sha256=digest, create_only=chain.head_etag is None, if_match=chain.head_etag,
        )
    except (ObjectExists, PreconditionFailed) as exc:
        # A retry of our own write that had landed finds our own bytes.
        info = s.remote.head(head_key(s.host))
        if info.sha256 != digest:
            raise fork_error(s.config, s.host, f"{head_key(s.host)} changed while pushing") from exc
        etag = info.etag
    chain = Chain(chain.seq, chain.sha256, chain.seq, etag)
    with s.store.write():
        s.save_chain(s.host, chain)
    return chain


def push_session(s: Session, listing: dict[str, str] | None = None) -> tuple[int, int]:
    """Push everything queued; returns (changesets, rows) sent.

    ``listing`` is the LIST of ``heads/`` a pull just made, so a sync does
    not list twice.
    """
    chain = s.chain(s.host)
    pending = _pending(s)
    if pending is not None and pending.host != s.host:
        # Built under a host id this store no longer uses: its rows are still queued.
        with s.store.write() as conn:
            conn.execute("DELETE FROM sync_pending WHERE remote = ?", [s.name])
        pending = None
    if pending is None and capture.pending_count(s.conn, s.name) == 0 and chain.head_seq >= chain.seq:
        return 0, 0
    s.store_id()
    if listing is None:
        listing = s.remote.list("heads/")
    chain = _check_own_head(s, listing, chain)
    sent = rows = 0
    total = capture.pending_count(s.conn, s.name)
    while True:
        if pending is None:
            pending = _build(s, chain)
            if pending is None:
                break
        if pending.seq != chain.seq + 1:
            raise AssertionError(f"pending seq {pending.seq} after {chain.seq}")
        _send(s, pending)
        chain = _done(s, pending, chain)
        sent += 1
        rows += pending.rows
        s.tick(rows, max(total, rows))
        pending = None
    if chain.head_seq < chain.seq:
        _write_head(s, chain)
    return sent, rows
