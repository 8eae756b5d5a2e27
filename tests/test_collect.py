"""Building operations from the outbox: current rows, deterministic order."""

from __future__ import annotations

from pathlib import Path

from synctools import log, mark_pushed, new_store

import sync
from localfirst import migrations
from localfirst.store import Store
from sync.capture import outbox_batch
from sync.changeset import Op
from sync.check import Schema
from sync.collect import Held, collect


def _collect(store: Store) -> tuple[list[Op], list[Held]]:
    return collect(store.conn, outbox_batch(store.conn, "origin", limit=100),
                   Schema(store.conn, len(migrations.names())))


def test_a_row_deleted_before_the_push_sends_only_its_tombstone(tmp_path: Path) -> None:
    store = new_store()
    sync.add_remote(store, "origin", f"file://{tmp_path}/r")
    rid = log(store, attachment=b"gone too")
    store.delete([rid])
    ops, held = _collect(store)
    assert not held
    assert [(op, table) for op, table, *_ in ops if table != "conversations"] == [("del", "responses")]


def test_a_part_carries_its_attachment_and_order_is_stable(tmp_path: Path) -> None:
    store = new_store()
    log(store, "first", attachment=b"shared bytes")
    sync.add_remote(store, "origin", f"file://{tmp_path}/r")
    mark_pushed(store)
    log(store, "second", attachment=b"shared bytes")  # the attachment row exists: not queued again
    queued = {t for (t,) in store.conn.execute("SELECT tbl FROM sync_changes")}
    assert "attachments" not in queued
    first = _collect(store)[0]
    again = _collect(store)[0]
    assert first == again
    tables = [t for _, t, *_ in first]
    assert tables == sorted(tables, key=["conversations", "attachments", "responses", "parts"].index)
    assert "attachments" in tables


def test_local_columns_are_never_sent(tmp_path: Path) -> None:
    store = new_store()
    sync.add_remote(store, "origin", f"file://{tmp_path}/r")
    log(store)
    ops, _ = _collect(store)
    response = next(row for _, t, row, *_ in ops if t == "responses")
    assert response is not None and "rowid" not in response


def test_a_row_others_would_refuse_is_held_back_and_the_rest_goes(tmp_path: Path) -> None:
    """Another program wrote a malformed time: sending it would stop every other machine at this changeset."""
    store = new_store()
    sync.add_remote(store, "origin", f"file://{tmp_path}/r")
    good = log(store, "fine")
    bad = log(store, "edited by hand")
    store.conn.execute("UPDATE responses SET datetime_utc = 'yesterday' WHERE id = ?", [bad])
    ops, held = _collect(store)
    sent = {row["id"] for _, t, row, *_ in ops if t == "responses" and row}
    assert sent == {good}
    assert held == [("responses", bad, "responses.datetime_utc must be a UTC time like "
                                       "2026-01-31T09:30:00.000000Z, not 'yesterday'")]
    result = sync.push(store)
    assert result.changesets == 1 and "not sent" in result.summary() and bad in result.summary()
    other = new_store()
    sync.add_remote(other, "origin", f"file://{tmp_path}/r")
    sync.pull(other)  # the changeset is accepted
    assert [r.id for r in other.list_responses(count=0)] == [good]
