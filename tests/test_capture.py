"""The outbox captures writes from any program; the guard pauses it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from synctools import log, mark_pushed, new_store

import sync
from localfirst.store import Store
from sync import capture


def queued(store: Store, remote: str = "origin") -> list[tuple[str, str]]:
    return capture.pending_keys(store.conn, remote)


def test_store_writes_are_queued_once_per_remote(tmp_path: Path) -> None:
    store = new_store()
    sync.add_remote(store, "origin", f"file://{tmp_path}/a")
    sync.add_remote(store, "backup", f"file://{tmp_path}/b")
    rid = log(store, "hi", attachment=b"data")
    tables = sorted(t for t, _ in queued(store))
    assert tables == ["attachments", "conversations", "parts", "parts", "responses"]
    assert len(queued(store, "backup")) == 5
    assert ("parts", f'["{rid}",1]') in queued(store)


def test_a_write_from_another_program_is_captured(db_path: Path, tmp_path: Path) -> None:
    store = new_store(db_path)
    sync.add_remote(store, "origin", f"file://{tmp_path}/r")
    store.close()
    raw = sqlite3.connect(db_path)
    raw.execute("INSERT INTO conversations (id, created_utc) VALUES ('01h00000000000000000000c0d', 't')")
    raw.execute("UPDATE conversations SET name = 'renamed by a script'")
    raw.commit()
    raw.close()
    store = new_store(db_path)
    assert queued(store) == [("conversations", "01h00000000000000000000c0d")]


def test_rename_and_delete_are_queued(tmp_path: Path) -> None:
    store = new_store()
    rid = log(store)
    sync.add_remote(store, "origin", f"file://{tmp_path}/r")
    mark_pushed(store)
    cid = store.conversations()[0].id
    store.rename_conversation(cid, "new")
    assert queued(store) == [("conversations", cid)]
    store.delete([rid], conversation_id=cid)
    assert ("tombstones", f'["responses","{rid}"]') in queued(store)
    assert ("tombstones", f'["conversations","{cid}"]') in queued(store)


def test_nothing_is_queued_without_a_remote() -> None:
    store = new_store()
    log(store)
    assert store.conn.execute("SELECT count(*) FROM sync_changes").fetchone()[0] == 0


def test_adding_a_remote_queues_the_whole_history(tmp_path: Path) -> None:
    store = new_store()
    rid = log(store, attachment=b"x")
    log(store)
    store.delete([rid], conversation_id=store.get_response(rid).conversation_id)
    sync.add_remote(store, "origin", f"file://{tmp_path}/r")
    tables = sorted(t for t, _ in queued(store))
    assert tables == ["conversations", "parts", "responses", "tombstones", "tombstones"]


def test_guard_stops_capture_and_is_gone_after(tmp_path: Path) -> None:
    store = new_store()
    sync.add_remote(store, "origin", f"file://{tmp_path}/r")
    with store.write() as conn, capture.guard(conn, "test"):
        conn.execute("INSERT INTO conversations (id, created_utc) VALUES ('01h00000000000000000000c0d', 't')")
    assert queued(store) == []
    assert store.conn.execute("SELECT count(*) FROM sync_guard").fetchone()[0] == 0
    log(store)
    assert queued(store) != []


def test_guard_row_is_never_visible_to_another_connection(db_path: Path, tmp_path: Path) -> None:
    store = new_store(db_path)
    sync.add_remote(store, "origin", f"file://{tmp_path}/r")
    other = sqlite3.connect(db_path)
    with store.write() as conn, capture.guard(conn, "test"):
        assert other.execute("SELECT count(*) FROM sync_guard").fetchone()[0] == 0
    other.close()


def test_a_crash_inside_the_guard_leaves_no_guard(db_path: Path, tmp_path: Path) -> None:
    store = new_store(db_path)
    sync.add_remote(store, "origin", f"file://{tmp_path}/r")
    try:
        with store.write() as conn, capture.guard(conn, "test"):
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    log(store)
    assert len(queued(store)) == 3


def test_merged_rows_are_queued_for_every_remote_but_not_by_the_triggers(tmp_path: Path) -> None:
    other = new_store(tmp_path / "other.db")
    kept = log(other, "from elsewhere")
    gone = log(other, "gone")
    other.delete([gone])
    other.close()
    store = new_store()
    sync.add_remote(store, "origin", f"file://{tmp_path}/r")
    sync.add_remote(store, "backup", f"file://{tmp_path}/b")
    result = sync.merge_database(store, tmp_path / "other.db")
    assert result.added["responses"] == 1
    for remote in ("origin", "backup"):
        rows = queued(store, remote)
        assert ("responses", kept) in rows
        assert ("tombstones", f'["responses","{gone}"]') in rows
        assert ("responses", gone) not in rows
        assert len(rows) == len(set(rows)) == 5  # conversation, response, part, tombstone... once each
    assert store.conn.execute("SELECT count(*) FROM sync_guard").fetchone()[0] == 0
