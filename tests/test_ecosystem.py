"""The file as llm's ecosystem expects it: sqlite-utils and Datasette search, keys, views, upgrades."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from localfirst import migrations
from localfirst.db import connect
from localfirst.records import Attachment, Part, Response
from localfirst.store import Store

BIN = Path(sys.executable).parent


def _fill(store: Store) -> dict[str, str]:
    """Responses where 'wal' is more or less prominent, a deleted one, parts and an attachment."""
    ids = {}
    ids["strong"] = store.log(Response(model="m1", prompt="wal wal wal", response="wal mode, the wal file"))
    ids["weak"] = store.log(Response(
        model="m2", prompt="tell me about sqlite journaling and many other long words to dilute it",
        response="there is also wal, among rollback journals, locking, pages, checkpoints and more"))
    gone = store.log(Response(model="m1", prompt="wal to delete", response="wal"))
    ids["other"] = store.log(Response(
        model="m1", prompt="nothing relevant", response="hello",
        parts=[Part(type="attachment", role="user", attachment=Attachment(b"png bytes", "image/png")),
               Part(type="text", text="hello")]))
    store.delete([gone])
    return ids


@pytest.fixture
def filled(db_path: Path) -> tuple[Path, dict[str, str]]:
    store = Store.open(db_path)
    ids = _fill(store)
    store.close()
    return db_path, ids


def _ranked(path: Path, query: str) -> list[str]:
    store = Store.open(path, for_reading=True)
    try:
        return [r.id or "" for r in store.list_responses(count=0, query=query)]
    finally:
        store.close()


def test_sqlite_utils_finds_the_index_and_ranks_like_logs_list(filled: tuple[Path, dict[str, str]]) -> None:
    from sqlite_utils import Database

    path, ids = filled
    db = Database(path)
    table = db["responses"]
    assert table.detect_fts() == "responses_fts"  # type: ignore[union-attr]
    assert table.pks == ["id"]  # type: ignore[union-attr]
    found = [row["id"] for row in table.search("wal")]  # type: ignore[union-attr]
    assert found == [ids["strong"], ids["weak"]] == _ranked(path, "wal")
    db.close()


def test_sqlite_utils_cli_search_and_tables_fts5(filled: tuple[Path, dict[str, str]]) -> None:
    path, ids = filled
    out = subprocess.run([str(BIN / "sqlite-utils"), "search", str(path), "responses", "wal", "-c", "id"],
                         capture_output=True, text=True, check=True).stdout
    assert [row["id"] for row in json.loads(out)] == [ids["strong"], ids["weak"]]
    tables = subprocess.run([str(BIN / "sqlite-utils"), "tables", "--fts5", str(path)],
                            capture_output=True, text=True, check=True).stdout
    # As on llm's own database: the index that searches responses.
    assert [t["table"] for t in json.loads(tables)] == ["responses_fts"]


def test_search_survives_vacuum(filled: tuple[Path, dict[str, str]]) -> None:
    from sqlite_utils import Database

    path, ids = filled
    before = _ranked(path, "wal")
    conn = sqlite3.connect(path)
    locators = dict(conn.execute("SELECT id, rowid FROM responses"))
    conn.execute("VACUUM")
    assert dict(conn.execute("SELECT id, rowid FROM responses")) == locators
    # FTS5 compares its index with the content table, row by row.
    conn.execute("INSERT INTO responses_fts (responses_fts) VALUES ('integrity-check')")
    conn.close()
    assert _ranked(path, "wal") == before == [ids["strong"], ids["weak"]]
    assert [r["id"] for r in Database(path)["responses"].search("wal")] == before  # type: ignore[union-attr]


def test_writers_that_leave_rowid_out_are_indexed(filled: tuple[Path, dict[str, str]]) -> None:
    """Another program (sqlite-utils here) inserts rows without a rowid: the trigger numbers them."""
    from sqlite_utils import Database

    path, ids = filled
    db = Database(path)
    conv = db.execute("SELECT conversation_id FROM responses LIMIT 1").fetchone()[0]
    db["responses"].insert_all([  # type: ignore[union-attr]
        {"id": f"01h0000000000000000000000{i}", "conversation_id": conv, "model": "x",
         "prompt": f"zebra number {i}", "datetime_utc": "2026-01-01T00:00:00.000000Z"} for i in range(3)])
    db.close()
    conn = sqlite3.connect(path)
    rowids = [r[0] for r in conn.execute("SELECT rowid FROM responses ORDER BY rowid")]
    assert None not in rowids and len(set(rowids)) == len(rowids)
    conn.execute("UPDATE responses SET prompt = 'giraffe' WHERE id = '01h00000000000000000000000'")
    conn.commit()
    conn.execute("INSERT INTO responses_fts (responses_fts) VALUES ('integrity-check')")
    conn.close()
    assert len(_ranked(path, "zebra")) == 2 and len(_ranked(path, "giraffe")) == 1


def test_foreign_keys_name_responses_by_id(fresh_store: Store) -> None:
    conn = fresh_store.conn
    refs = {(r[2], r[3], r[4]) for t in ("parts", "responses")
            for r in conn.execute(f"PRAGMA foreign_key_list({t})")}
    assert refs == {("responses", "response_id", "id"), ("attachments", "attachment_id", "id"),
                    ("conversations", "conversation_id", "id")}
    _fill(fresh_store)
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


def test_the_views_for_people(fresh_store: Store) -> None:
    ids = _fill(fresh_store)
    conn = fresh_store.conn
    conn.row_factory = sqlite3.Row
    rows = {r["id"]: dict(r) for r in conn.execute("SELECT * FROM exchanges")}
    assert set(rows) == {ids["strong"], ids["weak"], ids["other"]}
    assert rows[ids["strong"]]["conversation_name"] == "wal wal wal"
    assert rows[ids["strong"]]["response"] == "wal mode, the wal file"
    fresh_store.log(Response(model="m9", prompt="again", response="yes", conversation_id=rows[ids["strong"]]
                             ["conversation_id"], datetime_utc="2030-01-01T00:00:00.000000Z"))
    summary = {r["name"]: dict(r) for r in conn.execute("SELECT * FROM conversation_summaries")}
    assert set(summary) == {"wal wal wal", "tell me about sqlite journaling and man…", "nothing relevant"}
    first = summary["wal wal wal"]
    assert first["responses"] == 2 and first["last_utc"] == "2030-01-01T00:00:00.000000Z"
    assert sorted(first["models"].split(",")) == ["m1", "m9"]


def _old_database(path: Path) -> None:
    """A database as the release before m040 made it, with rows written through its own schema."""
    conn = connect(path)
    conn.execute("BEGIN IMMEDIATE")
    migrations.apply(conn, stop_before="m040_ecosystem")
    conn.execute("COMMIT")
    assert conn.execute("SELECT count(*) FROM pragma_table_info('responses') WHERE pk = 1 AND name = 'rowid'"
                        ).fetchone()[0] == 1
    conn.executescript(
        """
        INSERT INTO sync_remotes (name, url, added_utc) VALUES ('origin', 'file:///nowhere', 'now');
        INSERT INTO conversations (id, name, model, created_utc) VALUES
            ('01h00000000000000000000000', 'old talk', 'm', '2026-01-01T00:00:00.000000Z');
        INSERT INTO responses (id, conversation_id, model, prompt, response, datetime_utc) VALUES
            ('01h00000000000000000000001', '01h00000000000000000000000', 'm', 'first wal', 'a',
             '2026-01-01T00:00:00.000000Z'),
            ('01h00000000000000000000002', '01h00000000000000000000000', 'm', 'second', 'b',
             '2026-01-01T00:00:01.000000Z'),
            ('01h00000000000000000000003', '01h00000000000000000000000', 'm', 'third wal wal', 'c',
             '2026-01-01T00:00:02.000000Z');
        DELETE FROM responses WHERE id = '01h00000000000000000000002';
        INSERT INTO parts (response_id, ordinal, role, type, text) VALUES
            ('01h00000000000000000000003', 0, 'assistant', 'text', 'c');
        """
    )
    conn.close()


def test_upgrade_from_the_previous_release_keeps_every_row_and_the_index(db_path: Path) -> None:
    from sqlite_utils import Database

    _old_database(db_path)
    before = sqlite3.connect(db_path)
    rows = before.execute("SELECT * FROM responses ORDER BY id").fetchall()
    parts = before.execute("SELECT * FROM parts").fetchall()
    outbox = before.execute("SELECT count(*) FROM sync_outbox").fetchone()[0]
    before.close()
    store = Store.open(db_path)
    conn = store.conn
    cols = [r[1] for r in conn.execute("PRAGMA table_info(responses)") if r[1] != "rowid"]
    after = conn.execute(f"SELECT rowid, {', '.join(cols)} FROM responses ORDER BY id").fetchall()
    assert after == rows and conn.execute("SELECT * FROM parts").fetchall() == parts
    assert [r[1] for r in conn.execute("PRAGMA table_info(responses)") if r[5]] == ["id"]
    conn.execute("INSERT INTO responses_fts (responses_fts) VALUES ('integrity-check')")
    assert [r.id for r in store.list_responses(query="wal")] == ["01h00000000000000000000003",
                                                                  "01h00000000000000000000001"]
    # The capture trigger came back: a new response is queued for the remote.
    rid = store.log(Response(model="m", prompt="new wal", conversation_id="01h00000000000000000000000"))
    assert conn.execute("SELECT count(*) FROM sync_changes WHERE key = ?", [rid]).fetchone()[0] == 1
    from sync import capture

    remote = conn.execute("SELECT name FROM sync_remotes").fetchone()[0]
    assert capture.pending_count(conn, remote) == outbox + 1  # what waited still waits, and the new one
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert "REFERENCES responses(id)" in conn.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'parts'").fetchone()[0]
    store.close()
    assert Database(db_path)["responses"].detect_fts() == "responses_fts"  # type: ignore[union-attr]


def _datasette(path: Path):  # type: ignore[no-untyped-def]
    datasette = pytest.importorskip("datasette.app", reason="the web extra (datasette) is not installed")
    return datasette.Datasette([str(path)], immutables=[])


def test_datasette_links_rows_by_id_and_searches(filled: tuple[Path, dict[str, str]]) -> None:
    import asyncio

    path, ids = filled
    ds = _datasette(path)

    async def go() -> None:
        name = path.stem
        row = await ds.client.get(f"/{name}/responses/{ids['strong']}.json?_shape=objects")
        assert row.status_code == 200 and row.json()["rows"][0]["id"] == ids["strong"]
        hits = await ds.client.get(f"/{name}/responses.json?_search=wal&_shape=objects")
        assert {r["id"] for r in hits.json()["rows"]} == {ids["strong"], ids["weak"]}
        page = await ds.client.get(f"/{name}/parts")
        assert f'href="/{name}/responses/{ids["other"]}"' in page.text
        assert 'href="/logs/attachments/' in page.text
        table = await ds.client.get(f"/{name}/responses")
        assert 'name="_search"' in table.text

    asyncio.run(go())
