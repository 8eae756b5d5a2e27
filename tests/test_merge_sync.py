"""`localfirst merge` keeps its rules and agrees with sync."""

from __future__ import annotations

import shutil
from pathlib import Path

from synctools import dump, log, new_store

import sync
from localfirst.store import Store


def _two(tmp_path: Path) -> tuple[Store, Store]:
    a, b = new_store(tmp_path / "a.db"), new_store(tmp_path / "b.db")
    log(a, "a1", attachment=b"shared")
    keep = log(a, "a2")
    log(b, "b1", attachment=b"shared")
    a.rename_conversation(a.conversations()[0].id, "older name")
    b.delete([log(b, "b gone")])
    a.delete([keep])
    return a, b


def test_merge_is_commutative_and_idempotent(tmp_path: Path) -> None:
    a, b = _two(tmp_path)
    a.close()
    b.close()
    for first, second in (("a", "b"), ("b", "a")):
        shutil.copy(tmp_path / f"{first}.db", tmp_path / f"{first}-{second}.db")
    ab, ba = new_store(tmp_path / "a-b.db"), new_store(tmp_path / "b-a.db")
    sync.merge_database(ab, tmp_path / "b.db")
    sync.merge_database(ba, tmp_path / "a.db")
    assert dump(ab) == dump(ba)
    before = dump(ab)
    sync.merge_database(ab, tmp_path / "b.db")
    assert dump(ab) == before


def test_tombstones_win_and_the_latest_name_wins(tmp_path: Path) -> None:
    a, b = _two(tmp_path)
    rid = log(b, "deleted on a later")
    b.close()
    sync.merge_database(a, tmp_path / "b.db")
    a.delete([rid])
    cid = a.conversations()[-1].id
    a.rename_conversation(cid, "newest")
    a.close()
    b = new_store(tmp_path / "b.db")
    sync.merge_database(b, tmp_path / "a.db")
    assert rid not in {r.id for r in b.list_responses(count=0)}
    assert "newest" in {c.name for c in b.conversations()}


def test_merge_and_sync_agree(tmp_path: Path) -> None:
    """A store that got rows by sync and one that merged its file end the same;
    pushing again what the remote already has changes nothing anywhere."""
    url = f"file://{tmp_path}/remote"
    a, _ = _two(tmp_path)
    got_by_sync = new_store(tmp_path / "synced.db")
    got_by_merge = new_store(tmp_path / "merged.db")
    for s in (a, got_by_sync, got_by_merge):
        sync.add_remote(s, "origin", url)
    sync.sync(a)
    sync.sync(got_by_sync)
    got_by_sync.close()
    sync.merge_database(got_by_merge, tmp_path / "synced.db")
    assert dump(got_by_merge) == dump(a)
    sync.sync(got_by_merge)  # pulling what it merged, and pushing it again, changes nothing
    assert dump(got_by_merge) == dump(a)
    sync.sync(a)
    assert dump(a) == dump(got_by_merge)


def test_rows_merged_on_a_syncing_machine_reach_every_other_machine(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/remote"
    old = new_store(tmp_path / "old-laptop.db")
    kept = log(old, "from the old laptop", attachment=b"old bytes")
    old.delete([log(old, "deleted on the old laptop")])
    old.close()
    a, b = new_store(tmp_path / "a.db"), new_store(tmp_path / "b.db")
    for s in (a, b):
        sync.add_remote(s, "origin", url)
        sync.sync(s)
    sync.merge_database(a, tmp_path / "old-laptop.db")
    sync.sync(a)
    sync.sync(b)
    assert b.get_response(kept).prompt == "from the old laptop"
    assert dump(a) == dump(b)


def test_a_response_added_to_a_conversation_deleted_elsewhere_leaves_the_same_tombstones_everywhere(
        tmp_path: Path) -> None:
    """B adds a response to a conversation A deletes; B hears of the delete before pushing it.

    The response's own tombstone (derived from the conversation's) reaches C,
    which never saw the response: every machine ends with the same tombstones.
    """
    url = f"file://{tmp_path}/remote"
    a, b, c = (new_store(tmp_path / f"{n}.db") for n in "abc")
    for s in (a, b, c):
        sync.add_remote(s, "origin", url)
    first = log(a, "first")
    cid = a.get_response(first).conversation_id
    for s in (a, b, c):
        sync.sync(s)
    late = log(b, "added on b", cid=cid)
    a.delete(conversation_id=cid)
    sync.sync(a)
    sync.sync(b)  # pulls the delete (late goes with it), then pushes
    sync.sync(c)
    sync.sync(a)
    assert dump(a) == dump(b) == dump(c)
    assert ("responses", late) in {(t, k) for t, k, _ in dump(c)["tombstones"]}
