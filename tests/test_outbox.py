"""The outbox: one row per changed key whatever the number of remotes, gone once every remote has it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from synctools import log, new_store

import sync
from localfirst import migrations
from localfirst.db import connect
from localfirst.records import Response
from localfirst.store import Store
from sync import capture


def changes(store: Store) -> int:
    return int(store.conn.execute("SELECT count(*) FROM sync_changes").fetchone()[0])


def test_a_changed_key_is_one_row_whatever_the_number_of_remotes(tmp_path: Path) -> None:
    store = new_store()
    for name in ("a", "b", "c"):
        sync.add_remote(store, name, f"file://{tmp_path}/{name}")
    log(store, "hi")
    assert changes(store) == 3  # conversation, response, its part
    for name in ("a", "b", "c"):
        assert capture.pending_count(store.conn, name) == 3
    cid = store.conversations()[0].id
    store.rename_conversation(cid, "one")
    store.rename_conversation(cid, "two")
    assert changes(store) == 3, "a key written again moves to the end; it is not queued twice"


def test_changes_go_once_every_remote_has_pushed_them(tmp_path: Path) -> None:
    store = new_store()
    sync.add_remote(store, "a", f"file://{tmp_path}/a")
    sync.add_remote(store, "b", f"file://{tmp_path}/b")
    log(store, "hi")
    sync.push(store, "a")
    assert capture.pending_count(store.conn, "a") == 0
    assert capture.pending_count(store.conn, "b") == 3
    assert changes(store) == 3, "b has not pushed them yet"
    log(store, "again")
    sync.push(store, "b")
    assert capture.pending_count(store.conn, "b") == 0
    assert changes(store) == 3, "a has the first three, not the next ones"
    sync.push(store, "a")
    assert changes(store) == 0
    # Both remotes hold everything.
    for name in ("a", "b"):
        fresh = new_store()
        sync.add_remote(fresh, "r", f"file://{tmp_path}/{name}")
        sync.pull(fresh)
        assert sorted(r.prompt or "" for r in fresh.list_responses(count=0)) == ["again", "hi"]


def test_removing_a_remote_lets_the_others_clear_the_outbox(tmp_path: Path) -> None:
    store = new_store()
    sync.add_remote(store, "a", f"file://{tmp_path}/a")
    sync.add_remote(store, "b", f"file://{tmp_path}/b")
    log(store, "hi")
    sync.push(store, "a")
    assert changes(store) == 3
    sync.remove_remote(store, "b")
    log(store, "more")
    sync.push(store, "a")
    assert changes(store) == 0


def test_a_new_remote_gets_the_history_but_not_what_was_pulled_since(tmp_path: Path) -> None:
    store = new_store()
    log(store, "before any remote")
    assert changes(store) == 0, "nothing is queued with no remote to push to"
    sync.add_remote(store, "a", f"file://{tmp_path}/a")
    assert capture.pending_count(store.conn, "a") == 3
    sync.push(store, "a")
    assert capture.pending_count(store.conn, "a") == 0
    assert store.conn.execute("SELECT count(*) FROM sync_seed").fetchone()[0] == 0


def test_a_push_that_dies_midway_leaves_everything_to_push(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = new_store()
    sync.add_remote(store, "a", f"file://{tmp_path}/a")
    sync.push(store, "a")
    store.log_many([Response(model="m", prompt=f"p{i}", response="r") for i in range(30)])
    before = capture.pending_keys(store.conn, "a")
    from sync import send

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(send, "_done", crash)
    with pytest.raises(KeyboardInterrupt):
        sync.push(store, "a")
    assert capture.pending_keys(store.conn, "a") == before
    monkeypatch.undo()
    sync.push(store, "a")
    assert capture.pending_count(store.conn, "a") == 0 and changes(store) == 0
    fresh = new_store()
    sync.add_remote(fresh, "r", f"file://{tmp_path}/a")
    sync.pull(fresh)
    assert len(fresh.list_responses(count=0)) == 30


def test_the_file_shrinks_back_after_pushing_a_large_batch(tmp_path: Path) -> None:
    batch = [Response(model="m", prompt="p", response="r") for _ in range(4000)]
    alone = Store.open(tmp_path / "alone.db")  # the same rows, never queued
    alone.log_many(batch)
    store = Store.open(tmp_path / "lf.db")
    sync.add_remote(store, "a", f"file://{tmp_path}/a")
    sync.add_remote(store, "b", f"file://{tmp_path}/b")
    sync.push(store, "a")
    sync.push(store, "b")
    store.log_many([Response(model="m", prompt="p", response="r") for _ in range(4000)])

    def pages(s: Store) -> int:
        return int(s.conn.execute("PRAGMA page_count").fetchone()[0])

    assert changes(store) == 2 * 4000
    queued = pages(store)
    assert queued > pages(alone) + 20, "the queued keys take room"
    sync.push(store, "a")
    assert changes(store) == 2 * 4000, "b has not pushed them"
    assert pages(store) >= queued
    sync.push(store, "b")
    assert changes(store) == 0
    assert store.conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
    assert store.conn.execute("PRAGMA freelist_count").fetchone()[0] <= capture.RECLAIM_PAGES
    assert pages(store) < queued
    assert pages(store) <= pages(alone) + capture.RECLAIM_PAGES


def test_upgrade_keeps_what_each_remote_had_queued(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = connect(path)
    conn.execute("BEGIN IMMEDIATE")
    migrations.apply(conn, stop_before="m050_outbox")
    conn.execute("COMMIT")
    conn.execute("INSERT INTO sync_remotes (name, url, added_utc) VALUES ('a', 'file:///x', 't'), "
                 "('b', 'file:///y', 't')")
    conn.execute("INSERT INTO conversations (id, created_utc) VALUES ('01h00000000000000000000c0d', 't')")
    queued = [(r[0], r[1], r[2]) for r in conn.execute("SELECT remote, tbl, key FROM sync_outbox ORDER BY id")]
    assert queued == [("a", "conversations", "01h00000000000000000000c0d"),
                      ("b", "conversations", "01h00000000000000000000c0d")]
    conn.execute("DELETE FROM sync_outbox WHERE remote = 'b'")  # b had pushed it
    conn.close()
    store = Store.open(path)
    assert capture.pending_keys(store.conn, "a") == [("conversations", "01h00000000000000000000c0d")]
    assert capture.pending_keys(store.conn, "b") == []
    assert changes(store) == 1
    store.close()
    raw = sqlite3.connect(path)
    raw.execute("INSERT INTO conversations (id, created_utc) VALUES ('01h00000000000000000000c0e', 't')")
    raw.commit()
    raw.close()
    store = Store.open(path)
    assert capture.pending_keys(store.conn, "b") == [("conversations", "01h00000000000000000000c0e")]
    assert changes(store) == 2
