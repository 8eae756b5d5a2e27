"""Push: send this host's queued writes as the next changesets of its log.

1. Build a changeset from the outbox, with seq = last + 1, and save its
   exact bytes in a pending row, in one transaction.
2. Create ``log/<host>/<seq>`` (create-only). Already there with the same
   sha256: an earlier attempt of ours got there, go on. With another sha256:
   another machine uses this host id; stop, overwrite nothing.
3. In one transaction: move the remote's place in the outbox past the keys
   sent, delete the pending row, and advance the local seq.
4. When the log is ahead of the head, write ``heads/<host>.json``
   (compare-and-swap on its ETag).

A crash anywhere loses nothing and leaves no gap or duplicate: the next push
resumes from the pending row, whose bytes are identical.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from localfirst import hlc
from localfirst.errors import ClockSkew, ReadOnly, RemoteError

from . import capture, membership, team
from .changeset import MAX_TEXT, Header, encode, sha256
from .check import Schema
from .collect import Held, collect
from .remotes import ObjectExists, PreconditionFailed
from .session import Session, check_own_head, fork_error, head_key, log_key

__all__ = ["push_session", "check_writer", "MAX_KEYS"]

# Keys per changeset (each key is one row, plus the attachments it carries),
# and the size above which a changeset is built again with fewer keys (a
# pull refuses one that inflates past MAX_TEXT).
MAX_KEYS = 5000
MAX_BYTES = MAX_TEXT


@dataclass(frozen=True)
class Pending:
    host: str
    seq: int
    sha256: str
    outbox_max: int
    rows: int
    body: bytes
    seed_max: int | None = None  # the last seed row this changeset holds (capture.advance)


def _next(s: Session, schema: Schema, held: list[Held]) -> Pending | None:
    """The pending changeset, or the next one built from the oldest queued keys.

    Everything is read inside one write transaction, so two pushes of one
    store at the same time (a scheduled sync and a manual one) build one
    changeset per seq and send the same bytes.
    """
    store_id = s.store_id()
    sign = team.signer(s.team_keys()) if s.team_id is not None else None
    limit = MAX_KEYS
    while True:
        with s.store.write() as conn:
            row = conn.execute(
                "SELECT host, seq, sha256, outbox_max, rows, body, seed_max FROM sync_pending WHERE remote = ?",
                [s.name]
            ).fetchone()
            if row is not None and row[0] == s.host:
                return Pending(*row)
            # Built under a host id this store no longer uses: its rows are still queued.
            conn.execute("DELETE FROM sync_pending WHERE remote = ?", [s.name])
            batch = capture.outbox_batch(conn, s.name, limit=limit, tables=s.tables)
            if not batch:
                if s.tables is not None:
                    capture.advance(conn, s.name, batch.max_id, None)  # past what a team does not carry
                return None
            ops, skipped = collect(conn, batch, schema, team=s.team_id)
            if not ops:
                held += skipped
                # Every queued row is gone without a tombstone: nothing to say.
                capture.advance(conn, s.name, batch.max_id, batch.seed_max)
                continue
            chain = s.chain(s.host)
            header = Header(
                store=store_id, host=s.host, seq=chain.seq + 1, prev=chain.sha256,
                schema=s.schema_version, rows=len(ops),
            )
            body, size = encode(header, ops, with_size=True, sign=sign)
            if max(len(body), size) > MAX_BYTES:
                if limit > 1:
                    # Large attachments: fewer rows in this changeset.
                    limit = max(1, limit // 4)
                    continue
                # One row larger than any changeset may be: it stays here.
                key = next(iter(batch.keys.items()))
                held.append((key[0], key[1][0], "too large for one changeset"))
                capture.advance(conn, s.name, batch.max_id, batch.seed_max)
                continue
            held += skipped
            pending = Pending(s.host, header.seq, sha256(body), batch.max_id, len(ops), body, batch.seed_max)
            conn.execute(
                "INSERT INTO sync_pending (remote, host, seq, sha256, outbox_max, rows, body, seed_max) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [s.name, pending.host, pending.seq, pending.sha256, pending.outbox_max, pending.rows, body,
                 pending.seed_max],
            )
            return pending


def _send(s: Session, p: Pending) -> None:
    key = log_key(p.host, p.seq)
    try:
        s.remote.put(key, p.body, sha256=p.sha256, create_only=True)
    except ObjectExists:
        info = s.remote.head(key)
        if not s.remote.holds(key, p.body, info.sha256):
            raise fork_error(s.config, p.host, f"{key} already exists with other content") from None


def _done(s: Session, p: Pending) -> None:
    """Record ``p`` as sent, unless another push of this store already did."""
    with s.store.write() as conn:
        mine = conn.execute(
            "DELETE FROM sync_pending WHERE remote = ? AND seq = ? AND sha256 = ?", [s.name, p.seq, p.sha256]
        ).rowcount
        if mine:
            capture.advance(conn, s.name, p.outbox_max, p.seed_max)
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


# How far this machine's clock may be from the remote's before a push is
# refused (S3 itself refuses requests 15 minutes off).
MAX_SKEW_S = 600
_now = time.time  # this machine's clock (a test sets it wrong)


def _when(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 5400:
        return f"{seconds / 60:.0f} minutes"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 86400:.1f} days"


def check_clock(s: Session) -> None:
    """Refuse to write when this machine's clock, or this database's, is off the remote's.

    Edits are stamped with HLCs from this clock; other machines refuse those
    more than a day ahead of theirs, so a push from a clock running days
    ahead would succeed here and be refused everywhere else.
    """
    server = s.remote.server_time()
    if server is None:
        return
    skew = _now() - server
    if abs(skew) > MAX_SKEW_S:
        side = "ahead of" if skew > 0 else "behind"
        raise ClockSkew(
            f"this machine's clock is {_when(skew)} {side} the clock of remote {s.name!r}; nothing was pushed. "
            "Set the clock right (turn on network time) and sync again"
        )
    row = s.conn.execute("SELECT value FROM meta WHERE key = 'hlc'").fetchone()
    if row is not None:
        stamped = hlc.parse(row[0])[0] / 1000
        # A pull accepts HLCs a day past the later of two clocks up to
        # MAX_SKEW_S apart: allow that much here too.
        if stamped > server + hlc.MAX_AHEAD_MS / 1000 + MAX_SKEW_S:
            since = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(stamped - hlc.MAX_AHEAD_MS / 1000))
            raise ClockSkew(
                f"this database stamped edits {_when(stamped - server)} ahead of the clock of remote {s.name!r} "
                f"(its clock was wrong); other machines would refuse them until {since}. Nothing was pushed: "
                "the edits stay here and go out by themselves once that time has come"
            )


def check_writer(s: Session, listing: dict[str, str]) -> None:
    """Push to a team only while this machine's writer key is on its writer list: others would refuse it."""
    if s.config.writer not in membership.writers(s, listing).writers:
        raise ReadOnly(
            f"this machine's writer key is not on the writer list of team {s.name!r}, so the other members would "
            f"refuse what it writes; nothing was written (changes stay queued). Give the owner the key "
            f"`localfirst team whoami {s.name}` prints, to add with `localfirst team writers {s.name} add KEY`")


def push_session(s: Session, listing: dict[str, str] | None = None) -> tuple[int, int, list[Held]]:
    """Push everything queued; returns (changesets, rows) sent and the rows held back.

    ``listing`` is the LIST of ``heads/`` a pull just made, so a sync does
    not list twice.
    """
    if s.config.read_only:
        return 0, 0, []  # a team's reader: not one write request, whatever is queued here
    chain = s.chain(s.host)
    pending = s.conn.execute("SELECT 1 FROM sync_pending WHERE remote = ?", [s.name]).fetchone()
    if pending is None and capture.pending_count(s.conn, s.name, tables=s.tables) == 0 \
            and chain.head_seq >= chain.seq:
        if s.tables is not None and (past := capture.passed_over(s.conn, s.name, s.tables)) is not None:
            with s.store.write() as conn:
                capture.advance(conn, s.name, past, None)
        return 0, 0, []
    s.store_id()
    if listing is None:
        listing = s.remote.list("heads/")
    check_own_head(s, listing, chain)
    if s.team_id is not None:
        check_writer(s, listing)
    check_clock(s)
    sent = rows = 0
    total = capture.pending_count(s.conn, s.name, tables=s.tables)
    schema = Schema(s.conn, s.schema_version)
    schema.now_ms = hlc.MAX_WALL_MS  # the receivers judge the clock; the clock check is before the first write
    held: list[Held] = []
    while (p := _next(s, schema, held)) is not None:
        _send(s, p)
        _done(s, p)
        sent += 1
        rows += p.rows
        s.tick(rows, max(total, rows))
    capture.reclaim(s.conn)
    _write_head(s)
    return sent, rows, held
