"""Building operations from the outbox: current rows, deterministic order."""

from __future__ import annotations

from pathlib import Path

from synctools import log, new_store

import sync
from sync.capture import outbox_batch
from sync.collect import collect


def test_a_row_deleted_before_the_push_sends_only_its_tombstone(tmp_path: Path) -> None:
    store = new_store()
    sync.add_remote(store, "origin", f"file://{tmp_path}/r")
    rid = log(store, attachment=b"gone too")
    store.delete([rid])
    ops = collect(store.conn, outbox_batch(store.conn, "origin", limit=100))
    assert [(op, table) for op, table, *_ in ops if table != "conversations"] == [("del", "responses")]


def test_a_part_carries_its_attachment_and_order_is_stable(tmp_path: Path) -> None:
    store = new_store()
    log(store, "first", attachment=b"shared bytes")
    sync.add_remote(store, "origin", f"file://{tmp_path}/r")
    store.conn.execute("DELETE FROM sync_outbox")
    log(store, "second", attachment=b"shared bytes")  # the attachment row exists: not queued again
    queued = {t for (t,) in store.conn.execute("SELECT tbl FROM sync_outbox")}
    assert "attachments" not in queued
    first = collect(store.conn, outbox_batch(store.conn, "origin", limit=100))
    again = collect(store.conn, outbox_batch(store.conn, "origin", limit=100))
    assert first == again
    tables = [t for _, t, *_ in first]
    assert tables == sorted(tables, key=["conversations", "attachments", "responses", "parts"].index)
    assert "attachments" in tables


def test_local_columns_are_never_sent(tmp_path: Path) -> None:
    store = new_store()
    sync.add_remote(store, "origin", f"file://{tmp_path}/r")
    log(store)
    ops = collect(store.conn, outbox_batch(store.conn, "origin", limit=100))
    response = next(row for _, t, row, *_ in ops if t == "responses")
    assert response is not None and "rowid" not in response
