"""Opening llm's database: finding it, refusing what is not llm's, never writing to it."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from llm_dbs import assert_refused, make_legacy_db, store_counts

from localfirst.importers import import_llm
from localfirst.store import Store


@pytest.fixture
def legacy_db(tmp_path: Path) -> Path:
    return make_legacy_db(tmp_path / "old-logs.db")


def test_opens_llm_database_read_only(fresh_store: Store, legacy_db: Path) -> None:
    before = legacy_db.read_bytes()
    stamp = legacy_db.stat().st_mtime_ns
    import_llm(fresh_store, legacy_db)
    assert legacy_db.read_bytes() == before and legacy_db.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in legacy_db.parent.iterdir()) == [legacy_db.name]


def test_default_path_is_llm_user_path(run, legacy_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = legacy_db.parent / "user"
    folder.mkdir()
    shutil.copy(legacy_db, folder / "logs.db")
    monkeypatch.setenv("LLM_USER_PATH", str(folder))
    result = run("import", "llm")
    assert result.code == 0, result.err
    assert "Imported 4 responses in 2 new conversations" in result.out


def test_missing_path(run, tmp_path: Path) -> None:
    before = store_counts(run)
    assert_refused(run("import", "llm", str(tmp_path / "nope.db")), says="no llm database at")
    assert store_counts(run) == before


def test_not_sqlite(run, tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_text("hello, not a database\n" * 10)
    before = store_counts(run)
    assert_refused(run("import", "llm", str(junk)), says="is not an SQLite database")
    assert store_counts(run) == before


def test_damaged_sqlite_file(run, legacy_db: Path) -> None:
    data = bytearray(legacy_db.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)
    legacy_db.write_bytes(bytes(data))
    before = store_counts(run)
    assert_refused(run("import", "llm", str(legacy_db)), says="is not an SQLite database, or it is corrupt")
    assert store_counts(run) == before


def test_sqlite_that_is_not_llms(run, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE cities (name TEXT)")
    conn.commit()
    conn.close()
    before = store_counts(run)
    assert_refused(run("import", "llm", str(other)), says="not one written by llm")
    assert store_counts(run) == before


def test_a_localfirst_database_is_not_taken_for_llms(run, tmp_path: Path) -> None:
    other = tmp_path / "other-localfirst.db"
    assert run("--db", str(other), "log", "-m", "m", "-p", "q", "-r", "a").code == 0
    before = store_counts(run)
    assert_refused(run("import", "llm", str(other)), says="is a localfirst database, not llm's")
    assert store_counts(run) == before


def test_unknown_schema_reports_skipped_tables(run, legacy_db: Path) -> None:
    conn = sqlite3.connect(legacy_db)
    conn.execute("CREATE TABLE turn_ratings (turn_id TEXT, stars INTEGER)")
    # A future message store whose turns we cannot read.
    conn.execute("CREATE TABLE turns (id TEXT PRIMARY KEY, spans TEXT)")
    conn.commit()
    conn.close()
    result = run("import", "llm", str(legacy_db))
    assert result.code == 0, result.err
    assert "Skipped table turn_ratings: not part of an llm schema this version knows" in result.out
    assert "Skipped table turns: the threads/turns tables lack" in result.out
    assert "Imported 4 responses" in result.out


def test_wal_database_is_read_without_leaving_files(fresh_store: Store, legacy_db: Path) -> None:
    conn = sqlite3.connect(legacy_db)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()
    before = legacy_db.read_bytes()
    report = import_llm(fresh_store, legacy_db)
    assert report.imported == 4
    assert legacy_db.read_bytes() == before
    assert sorted(p.name for p in legacy_db.parent.iterdir()) == [legacy_db.name]
