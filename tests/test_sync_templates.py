"""Templates sync where the schema has them (migration m010_templates):
versions are immutable rows, a template's tombstone removes its versions."""

from __future__ import annotations

from pathlib import Path

from synctools import dump, new_store

import sync
from localfirst import hlc, ids
from localfirst.migrations import _m020_capture
from localfirst.store import Store

TEMPLATE_TABLES = """
CREATE TABLE IF NOT EXISTS templates (id TEXT PRIMARY KEY, name TEXT NOT NULL, created_utc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS template_versions (
    id TEXT PRIMARY KEY, template_id TEXT NOT NULL REFERENCES templates(id), hlc TEXT NOT NULL,
    prompt TEXT, system TEXT, model TEXT, options_json TEXT, defaults_json TEXT, extras TEXT,
    created_utc TEXT NOT NULL
);
"""


def with_templates(store: Store) -> Store:
    """Give a store the template tables and their capture triggers, if it lacks them."""
    triggers = _m020_capture("templates", "new.id") + _m020_capture("template_versions", "new.id")
    store.conn.executescript(TEMPLATE_TABLES + triggers.replace("CREATE TRIGGER", "CREATE TRIGGER IF NOT EXISTS"))
    return store


WHEN = "2026-01-01T00:00:00.000000Z"


def add_version(store: Store, template_id: str | None, prompt: str) -> str:
    with store.write() as conn:
        if template_id is None:
            template_id = ids.new_id()
            conn.execute("INSERT INTO templates (id, name, created_utc) VALUES (?, 'summary', ?)", [template_id, WHEN])
        conn.execute(
            "INSERT INTO template_versions (id, template_id, hlc, prompt, created_utc) VALUES (?, ?, ?, ?, ?)",
            [ids.new_id(), template_id, hlc.tick(conn), prompt, WHEN],
        )
    return template_id


def test_templates_and_their_deletion_sync(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/r"
    a, b = with_templates(new_store()), with_templates(new_store())
    for s in (a, b):
        sync.add_remote(s, "origin", url)
    tid = add_version(a, None, "v1")
    sync.sync(a)
    sync.sync(b)
    add_version(b, tid, "v2 from b")
    sync.sync(b)
    sync.sync(a)
    assert dump(a) == dump(b)
    assert a.conn.execute("SELECT count(*) FROM template_versions").fetchone()[0] == 2
    later = hlc.parse(b.conn.execute("SELECT max(hlc) FROM template_versions").fetchone()[0])
    with a.write() as conn:
        assert hlc.parse(hlc.tick(conn)) > later, "the clock moved past the versions it applied"
        conn.execute("DELETE FROM template_versions WHERE template_id = ?", [tid])
        conn.execute("DELETE FROM templates WHERE id = ?", [tid])
        conn.execute("INSERT INTO tombstones (tbl, key, hlc) VALUES ('templates', ?, ?)", [tid, hlc.tick(conn)])
    add_version(b, tid, "v3 from b, before it hears of the delete")
    sync.sync(a)
    sync.sync(b)
    sync.sync(a)
    assert dump(a) == dump(b)
    assert b.conn.execute("SELECT count(*) FROM template_versions").fetchone()[0] == 0
