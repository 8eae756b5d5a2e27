"""Attacks on sync and merge, each built by hand.

Every test here states a promise of docs/sync.md or the design contract. The
ones marked in their docstring as "held" pass; every other one fails on the
code it was written against and shows how the promise breaks.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from helpers import assert_one_line_error
from synctools import dump, log, new_store
from test_apply import CIDS, RIDS, T, apply_all, stamp
from test_hostile import EVIL, attachment, plant, raw_lines, store_id

import sync
from localfirst.errors import CorruptObject
from localfirst.records import Attachment, Part, Response
from localfirst.store import Store
from sync.apply import content_hash
from sync.folder import FolderRemote
from sync.merge import merge_database


def _conv(cid: str) -> tuple[Any, ...]:
    return ("set", "conversations", {"id": cid, "name": None, "model": "m", "created_utc": T, "name_hlc": ""},
            None, None)


def _resp(rid: str, cid: str, prompt: str) -> tuple[Any, ...]:
    return ("put", "responses", {"id": rid, "conversation_id": cid, "model": "m", "prompt": prompt,
                                 "response": "r", "datetime_utc": T}, None, None)


def _part(rid: str, ordinal: int, text: str) -> tuple[Any, ...]:
    return ("put", "parts", {"response_id": rid, "ordinal": ordinal, "role": "assistant", "type": "text",
                             "text": text}, None, None)


# 1. A conversation's tombstone names a response through a column the conflict rule can change.

def test_a_conversation_delete_and_a_conflicting_response_converge_and_stay_deleted() -> None:
    """Promise: the result does not depend on delivery order, and a deleted key never comes back.

    Two machines logged response R with the same id into different
    conversations (C0, C1); a third deleted the conversation of the version
    that wins the smallest-hash rule. A machine that gets both versions and
    then the delete ends with no R; one that gets the delete first drops the
    winning version (its conversation is dead) and keeps the losing one. And
    on the first machine, the losing version delivered once more (another
    host, a merge) brings R back. The tombstone names R only through
    conversation_id, a column the conflict rule may change, and R itself gets
    no tombstone (sync/apply.py Applier._alive, localfirst/registry.py bury).
    """
    rid = RIDS[0]
    versions = {cid: [_resp(rid, cid, f"said in {cid[-1]}")] for cid in CIDS}
    probe = new_store()
    apply_all(probe, [[_conv(c) for c in CIDS], *versions.values()])
    winner = probe.conn.execute("SELECT conversation_id FROM responses").fetchone()[0]
    loser = next(c for c in CIDS if c != winner)
    delete = [("del", "conversations", None, winner, stamp(1, 0))]
    convs = [_conv(c) for c in CIDS]

    both_then_delete = new_store()
    apply_all(both_then_delete, [convs, versions[winner], versions[loser], delete])
    delete_first = new_store()
    apply_all(delete_first, [convs, delete, versions[winner], versions[loser]])
    assert dump(both_then_delete)["responses"] == dump(delete_first)["responses"], "machines diverge"

    apply_all(both_then_delete, [versions[loser]])
    assert both_then_delete.conn.execute("SELECT count(*) FROM responses").fetchone()[0] == 0, \
        "the deleted response came back"


def test_parts_of_a_dropped_response_version_do_not_join_the_kept_one() -> None:
    """Promise: the result does not depend on delivery order (a conflict on a part vs its response).

    Changeset X deletes conversation C1 and carries response R in C1 with
    parts 0 and 1; changeset Y carries R in C0 with part 0 only. X then Y:
    R(C1) and its parts are dropped, R(C0) keeps one part. Y then X: R(C1)
    is dropped but its parts pass Applier._alive, which only asks whether
    *a* row with key R is here, so part 1 of the dropped version is attached
    to R(C0) and part 0 goes through the conflict rule (sync/apply.py
    Applier._alive, the `table.parent` branch).
    """
    rid = RIDS[1]
    x = [_conv(CIDS[1]), ("del", "conversations", None, CIDS[1], stamp(1, 0)),
         _resp(rid, CIDS[1], "dropped"), _part(rid, 0, "dropped 0"), _part(rid, 1, "dropped 1")]
    y = [_conv(CIDS[0]), _resp(rid, CIDS[0], "kept"), _part(rid, 0, "kept 0")]
    xy, yx = new_store(), new_store()
    apply_all(xy, [x, y])
    apply_all(yx, [y, x])
    assert dump(xy)["parts"] == dump(yx)["parts"]


# 2. Merge: a refused file with rows still to read masks the error with a traceback.

def test_a_refused_merge_of_a_large_file_is_one_error_line(tmp_path: Path, run: Any) -> None:
    """Promise: a hostile file for `localfirst merge` gives one `Error:` line, never a traceback.

    When the refusal comes while the other file's cursor still has rows
    (more than one batch of 5,000 tombstones, one of them bad; or a text
    value that is not UTF-8, which fails inside fetchmany), the
    ``DETACH DATABASE other`` in the ``finally`` of sync/merge.py
    merge_database fails with "database other is locked" and that
    sqlite3.OperationalError replaces the DatabaseError.
    """
    other = new_store(tmp_path / "other.db")
    log(other, "hello")
    good = "1700000000000.0000." + EVIL
    other.conn.executemany("INSERT INTO tombstones (tbl, key, hlc) VALUES ('responses', ?, ?)",
                           [(f"01h{i:023d}", good) for i in range(6000)])
    other.conn.execute("UPDATE tombstones SET hlc = 'not an hlc' WHERE key = ?", [f"01h{0:023d}"])
    other.close()
    mine = new_store(tmp_path / "mine.db")
    mine.close()
    result = run("--db", str(tmp_path / "mine.db"), "merge", str(tmp_path / "other.db"))
    assert_one_line_error(result, "hlc")


# 3. Merge: views in the other file are read as if they were its tables.

def test_merge_does_not_run_views_planted_in_the_other_file(tmp_path: Path) -> None:
    """Promise: a hostile file for merge is refused, not run; nothing past the checks is unbounded.

    sync/merge.py _batches reads ``other.tombstones`` whatever it is. A
    view there runs on merge: a recursive CTE with printf() makes any number
    of valid tombstones (``WHERE x < 10**12`` is a merge that never ends and
    fills the disk inside one transaction) from a file of a few pages. Here
    it makes 1,000; the merge applies them all.
    """
    other = new_store(tmp_path / "other.db")
    log(other, "hello")
    other.close()
    conn = sqlite3.connect(tmp_path / "other.db")
    conn.executescript(
        "DROP TABLE tombstones; CREATE VIEW tombstones AS WITH RECURSIVE c(x) AS "
        "(SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000) "
        f"SELECT 'responses' AS tbl, printf('01h%023d', x) AS key, '1700000000000.0000.{EVIL}' AS hlc FROM c"
    )
    conn.close()
    mine = new_store(tmp_path / "mine.db")
    try:
        merge_database(mine, tmp_path / "other.db")
    except Exception:  # noqa: BLE001 - refusing the file is the fix
        return
    made = mine.conn.execute("SELECT count(*) FROM tombstones").fetchone()[0]
    assert made == 0, f"a view in the other file made {made} tombstones here"


# 4. A head that nests too deep: RecursionError, blocking every host and our own push.

def test_a_deeply_nested_head_is_one_error_and_blocks_nothing(two_machines: tuple[Path, Store, Store],
                                                              run: Any) -> None:
    """Promise: nothing on a remote gives a traceback; other hosts still sync and our own push goes out.

    sync/session.py _json (used by read_head and store_id) catches
    ValueError and UnicodeDecodeError, not RecursionError: a head of
    ``[[[[...]]]]`` escapes pull_session (which catches only CorruptObject
    and ObjectMissing around read_head) as a traceback, before the honest
    host is applied and before the push.
    """
    root, honest, victim = two_machines
    (root / "heads" / f"{EVIL}.json").write_text("[" * 100_000 + "]" * 100_000)
    mine = log(victim, "the victim's own")
    victim.close()
    result = run("--db", str(victim.path), "sync")
    assert_one_line_error(result, EVIL)
    victim = Store.open(victim.path)
    assert {r.prompt for r in victim.list_responses(count=0)} == {"from the honest host", "the victim's own"}
    with pytest.raises(CorruptObject):
        sync.sync(honest)  # the honest host is told too, at the end, after taking the rest
    assert mine in {r.id for r in honest.list_responses(count=0)}


# 5. Heads and format.json are read whole, whatever their size.

class _Capped(FolderRemote):
    """A folder remote that remembers each read made without a cap."""

    uncapped: list[str]

    def get(self, key: str, *, max_bytes: int | None = None) -> bytes:
        if max_bytes is None:
            self.uncapped.append(key)
        return super().get(key, max_bytes=max_bytes)


def test_every_read_from_a_remote_is_capped(two_machines: tuple[Path, Store, Store]) -> None:
    """Promise: memory stays bounded whatever a remote holds (docs: "at most 33 MiB read from the remote").

    sync/session.py read_head (``self.remote.get(key)``) and store_id
    (``self.remote.get(FORMAT_KEY)``) pass no ``max_bytes``: a folder
    remote reads the whole file (``f.read()``), S3 the whole body. A
    heads/<host>.json of gigabytes (whitespace then valid JSON) is read into
    memory by every machine that syncs.
    """
    root, _, victim = two_machines
    (root / "heads" / f"{EVIL}.json").write_text(" " * 1000 + json.dumps({"host": EVIL, "seq": 0, "sha256": ""}))
    client = _Capped(root.as_uri())
    client.uncapped = []
    sync.sync(victim, client=client)
    assert client.uncapped == []


# 6. An attachment's bytes lost to a version without them.

def test_a_version_without_bytes_never_replaces_an_attachment_s_bytes(two_machines: tuple[Path, Store, Store]
                                                                      ) -> None:
    """Promise: an attachment's bytes hash to its id; the conflict rule keeps content, never loses it.

    An attachment is keyed by the sha256 of its bytes, but sync/check.py
    _check_attachments accepts a row with that id and ``content`` null, and
    sync/apply.py Applier._resolve keeps whichever version has the smaller
    canonical hash. A hostile host grinds ``path`` until its hash is smaller
    (a few tries) and every machine drops the real bytes.
    """
    root, honest, victim = two_machines
    content = b"the real bytes of a picture"
    honest.log(Response(model="m", prompt="look", parts=[
        Part(type="attachment", role="user", attachment=Attachment(content, "image/png"))]))
    sync.sync(honest)
    sync.sync(victim)
    aid = hashlib.sha256(content).hexdigest()
    real = victim.conn.execute("SELECT mime_type, size, content, path, url FROM attachments WHERE id = ?",
                               [aid]).fetchone()
    names = ("mime_type", "size", "content", "path", "url")
    real_hash = content_hash(zip(names, real, strict=True))
    for i in range(100_000):
        fake = ("image/png", len(content), None, f"p{i}", None)
        if content_hash(zip(names, fake, strict=True)) < real_hash:
            break
    row = attachment(content)
    row["row"].update(content=None, path=fake[3])
    plant(root, raw_lines(store_id(root), [json.dumps(row)]))
    sync.sync(victim)
    assert victim.attachment_content(aid) == content


# 7. One row another program wrote with text that is not UTF-8 stops every push.

def test_a_row_with_text_that_is_not_utf8_is_held_back_not_blocking(two_machines: tuple[Path, Store, Store]
                                                                    ) -> None:
    """Promise (docs "What a reader checks"): a row another program wrote with a malformed value is held back;
    everything else goes out.

    sync/collect.py _select fetches rows with Python's default text
    factory; a TEXT value holding bytes that are not UTF-8 (the sqlite3
    shell writes them happily) raises sqlite3.OperationalError "Could not
    decode to UTF-8" before _sendable can hold it back, so the push stops,
    now and at every later sync: no other row ever goes out.
    """
    _, honest, victim = two_machines
    good = log(victim, "a good row")
    bad = log(victim, "a bad row")
    victim.conn.execute("UPDATE responses SET prompt = CAST(x'ff80' AS TEXT) WHERE id = ?", [bad])
    pushed = sync.sync(victim).pushed
    assert [(t, k) for t, k, _ in pushed.held] == [("responses", bad)]
    sync.sync(honest)
    assert good in {r.id for r in honest.list_responses(count=0)}


# Attacks that held (not covered by tests/test_hostile.py).

def test_held_duplicate_keys_inside_one_changeset_converge() -> None:
    """Held: the same key twice in one changeset, and the two versions in two changesets, give one result."""
    rid = RIDS[2]
    a, b = _resp(rid, CIDS[0], "alpha"), _resp(rid, CIDS[0], "bravo")
    results = []
    for batches in ([[_conv(CIDS[0]), a, b]], [[_conv(CIDS[0]), b, a]], [[_conv(CIDS[0])], [a], [b]],
                    [[_conv(CIDS[0])], [b], [a]]):
        store = new_store()
        apply_all(store, batches)
        results.append(dump(store)["responses"])
    assert all(r == results[0] for r in results)


def test_held_a_head_naming_seq_10_to_the_12_costs_little(two_machines: tuple[Path, Store, Store]) -> None:
    """Held: a head naming changeset 10**12 is one error after a bounded number of reads; the rest syncs."""
    root, honest, victim = two_machines
    (root / "heads" / f"{EVIL}.json").write_text(json.dumps({"host": EVIL, "seq": 10**12, "sha256": "0" * 64}))
    mine = log(victim, "mine")
    with pytest.raises(Exception, match="not copied there yet|no object"):
        sync.sync(victim)
    assert {r.prompt for r in victim.list_responses(count=0)} == {"from the honest host", "mine"}
    with pytest.raises(Exception, match="not copied there yet|no object"):
        sync.sync(honest)
    assert mine in {r.id for r in honest.list_responses(count=0)}


def test_held_merge_of_a_file_with_wrong_types_or_missing_columns_is_refused_whole(tmp_path: Path) -> None:
    """Held: bytes in a key column, or a table without its key column, refuse the merge and change nothing."""
    base = new_store(tmp_path / "base.db")
    log(base, "hello")
    base.close()
    mine = new_store(tmp_path / "mine.db")
    before = dump(mine)
    for n, sql in enumerate([
        "UPDATE parts SET response_id = CAST(response_id AS BLOB)",
        "ALTER TABLE responses RENAME TO r_old; CREATE TABLE responses AS "
        "SELECT conversation_id, model, datetime_utc FROM r_old",
    ]):
        path = tmp_path / f"o{n}.db"
        shutil.copy(tmp_path / "base.db", path)
        conn = sqlite3.connect(path)
        conn.executescript(sql)
        conn.close()
        with pytest.raises(Exception, match="nothing was merged"):
            merge_database(mine, path)
        assert dump(mine) == before
