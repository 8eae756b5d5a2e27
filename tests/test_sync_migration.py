"""m020_sync on a database that already holds history."""

from __future__ import annotations

from pathlib import Path

from synctools import dump, new_store

import sync
from localfirst import migrations
from localfirst.db import connect
from localfirst.store import Store


def test_history_written_before_the_upgrade_syncs(tmp_path: Path) -> None:
    conn = connect(tmp_path / "old.db")
    conn.execute("BEGIN IMMEDIATE")
    migrations.apply(conn, stop_before="m020_sync")
    conn.execute("COMMIT")
    when = "2026-01-01T00:00:00.000000Z"
    conn.execute("INSERT INTO conversations (id, created_utc) VALUES ('01h00000000000000000000c0d', ?)", [when])
    conn.execute(
        "INSERT INTO responses (id, conversation_id, model, prompt, datetime_utc) "
        "VALUES ('01h00000000000000000000r0d', '01h00000000000000000000c0d', 'm', 'old', ?)", [when]
    )
    old = Store(conn, path=str(tmp_path / "old.db"))
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'sync_%'")]
    assert {"sync_remotes", "sync_outbox", "sync_chain", "sync_pending", "sync_guard"} <= set(names)
    sync.add_remote(old, "origin", f"file://{tmp_path}/r")
    sync.push(old)
    fresh = new_store()
    sync.add_remote(fresh, "origin", f"file://{tmp_path}/r")
    sync.pull(fresh)
    assert dump(fresh) == dump(old)
    assert [r.prompt for r in fresh.list_responses()] == ["old"]
