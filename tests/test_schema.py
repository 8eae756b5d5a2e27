"""The schema of a fresh database, its documentation and its upgrades."""

import os
import re
import sqlite3
from pathlib import Path

import pytest

from localfirst import migrations
from localfirst.db import connect
from localfirst.errors import SchemaTooNew
from localfirst.store import Store

DOC = Path(__file__).parent.parent / "docs" / "schema.md"


def schema_sql(conn: sqlite3.Connection) -> str:
    rows = conn.execute(
        "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL "
        "AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '%_fts_%' AND name != '_sqlite_migrations' "
        "AND name NOT LIKE 'idx__sqlite_migrations%' ORDER BY type DESC, name"
    ).fetchall()
    return "\n\n".join(re.sub(r"\n\s+", "\n    ", r[0].strip()) + ";" for r in rows)


def test_docs_show_the_schema_of_a_fresh_database():
    conn = connect(":memory:")
    Store(conn)
    actual = schema_sql(conn)
    if os.environ.get("LOCALFIRST_UPDATE_DOCS"):
        text = DOC.read_text()
        text = re.sub(r"(<!-- schema -->\n```sql\n).*?(\n```)", lambda m: m.group(1) + actual + m.group(2),
                      text, flags=re.S)
        DOC.write_text(text)
    documented = re.search(r"<!-- schema -->\n```sql\n(.*?)\n```", DOC.read_text(), re.S).group(1)
    assert documented == actual, "docs/schema.md is stale: rerun with LOCALFIRST_UPDATE_DOCS=1"


def test_upgrade_from_every_older_schema_matches_a_fresh_one(tmp_path):
    fresh = connect(":memory:")
    Store(fresh)
    expected = schema_sql(fresh)
    for stop in migrations.names()[1:]:
        path = tmp_path / f"{stop}.db"
        old = connect(path)
        old.execute("BEGIN IMMEDIATE")
        migrations.apply(old, stop_before=stop)
        old.execute("COMMIT")
        old.close()
        upgraded = Store.open(path)
        assert schema_sql(upgraded.conn) == expected
        upgraded.close()


def test_migrations_are_recorded_by_name():
    conn = connect(":memory:")
    Store(conn)
    names = [r[0] for r in conn.execute("SELECT name FROM _sqlite_migrations ORDER BY id")]
    assert names == migrations.names()
    assert names[0] == "m001_initial"


def test_a_database_from_a_newer_version_is_refused(db_path):
    Store.open(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
                 "VALUES ('localfirst', 'm999_from_the_future', '2030')")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaTooNew, match="newer version"):
        Store.open(db_path)


def test_m070_keeps_every_part_and_a_part_of_prose_costs_its_size(tmp_path):
    """Parts of 1.1 kB prose took a page more each in a WITHOUT ROWID table; the upgrade keeps every row."""
    path = tmp_path / "old.db"
    old = connect(path)
    old.execute("BEGIN IMMEDIATE")
    migrations.apply(old, stop_before="m070_parts")
    old.execute("COMMIT")
    prose = ("a sentence of ordinary prose about databases, clocks and networks. " * 16)[:1100]
    old.execute("INSERT INTO conversations (id, name, created_utc) VALUES ('c1', 'talk', '2026')")
    for i in range(600):
        rid = f"r{i:05d}"
        old.execute("INSERT INTO responses (id, conversation_id, model, datetime_utc) VALUES (?, 'c1', 'm', '2026')",
                    [rid])
        old.executemany("INSERT INTO parts (response_id, ordinal, role, type, text, extras) VALUES (?, ?, ?, ?, ?, ?)",
                        [(rid, 0, "user", "text", f"{i} question", None),
                         (rid, 1, "assistant", "text", prose + str(i), '{"x": 1}')])
    old.commit()
    before = old.execute("SELECT * FROM parts ORDER BY response_id, ordinal").fetchall()
    old.execute("VACUUM")
    pages_before = old.execute("PRAGMA page_count").fetchone()[0]
    old.close()

    upgraded = Store.open(path)
    conn = upgraded.conn
    assert conn.execute("SELECT * FROM parts ORDER BY response_id, ordinal").fetchall() == before
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'parts'").fetchone()[0]
    assert "WITHOUT ROWID" not in sql
    # Parts are written in key order, so a scan of the table is a scan of the key.
    assert [r[0] for r in conn.execute("SELECT response_id FROM parts ORDER BY rowid")] == [r[0] for r in before]
    conn.execute("VACUUM")
    pages_after = conn.execute("PRAGMA page_count").fetchone()[0]
    upgraded.close()
    # 600 parts of 1.1 kB prose each took a 4 KiB overflow page of their own before: most of that is gone.
    assert pages_before - pages_after > 400, (pages_before, pages_after)
