"""Opening databases and writing rows in bulk."""

import sqlite3

import pytest

from localfirst.db import insert_rows


def test_insert_rows_writes_every_row_in_one_statement_in_order():
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER, b BLOB)")
    conn.execute("CREATE VIRTUAL TABLE f USING fts5(k)")
    conn.execute("CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN INSERT INTO f (k) VALUES (new.k); END")
    rows = [("b", 2, b"\x00\xff"), ("a", 1, None), ("c", 3.5, "text")]
    assert insert_rows(conn, "INSERT INTO t (k, v, b)", rows, width=3) == 3
    assert conn.execute("SELECT k, v, b FROM t ORDER BY rowid").fetchall() == rows
    assert conn.execute("SELECT count(*) FROM f WHERE f MATCH 'a OR b OR c'").fetchone()[0] == 3
    # the staging table is left empty, and an upsert tail applies
    changed = insert_rows(conn, "INSERT INTO t (k, v, b)", [("a", 10, None), ("d", 4, None)], width=3,
                          tail="ON CONFLICT (k) DO UPDATE SET v = excluded.v")
    assert changed == 2
    assert dict(conn.execute("SELECT k, v FROM t")) == {"a": 10, "b": 2, "c": 3.5, "d": 4}
    assert conn.execute("SELECT count(*) FROM temp._stage_3").fetchone()[0] == 0


def test_insert_rows_of_one_row_and_of_none():
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
    assert insert_rows(conn, "INSERT INTO t (k)", [], width=1) == 0
    assert insert_rows(conn, "INSERT INTO t (k)", [("x",)], width=1) == 1
    with pytest.raises(sqlite3.IntegrityError):
        insert_rows(conn, "INSERT INTO t (k)", [("y",), ("x",)], width=1)
    assert conn.execute("SELECT count(*) FROM temp._stage_1").fetchone()[0] == 0


def test_sqlite_errors_are_translated_by_their_code_not_their_text(tmp_path):
    from localfirst.db import connect, translate
    from localfirst.errors import DatabaseError, NotADatabase
    from localfirst.store import Store

    # Messages that merely mention what other codes mean stay what they are.
    conn = sqlite3.connect(":memory:")
    for table in ("readonly_notes", "corrupt_files", "not a database", "unable to open"):
        with pytest.raises(sqlite3.OperationalError) as caught:
            conn.execute(f'SELECT * FROM "{table}"')
        err = translate(caught.value, "x.db")
        assert type(err) is DatabaseError and str(err) == f"x.db: no such table: {table}"
    # Real conditions keep their messages, chained to the sqlite3 error and its code.
    notes = tmp_path / "notes.db"
    notes.write_text("not a database at all\n" * 200)
    with pytest.raises(NotADatabase, match="is not an SQLite database, or it is corrupt") as caught:
        Store.open(notes)
    assert caught.value.__cause__.sqlite_errorname == "SQLITE_NOTADB"
    with pytest.raises(DatabaseError, match="directory .*missing does not exist") as caught:
        connect(tmp_path / "missing" / "x.db").execute("SELECT 1")
    assert caught.value.__cause__.sqlite_errorname == "SQLITE_CANTOPEN"
    with pytest.raises(DatabaseError, match="cannot open .*readable and writable"):
        connect(notes / "x.db").execute("SELECT 1")  # its "directory" is a file
    Store.open(tmp_path / "ro.db").close()
    store = Store(connect(tmp_path / "ro.db", readonly=True), path="ro.db")
    with pytest.raises(DatabaseError, match="cannot write to ro.db: the file or its directory is read-only") as caught:
        store.rename_conversation("01" + "0" * 24, "x")
    assert caught.value.__cause__.sqlite_errorcode & 0xFF == sqlite3.SQLITE_READONLY
    store.close()


def test_a_file_without_migrations_is_told_apart_without_an_error(tmp_path):
    from localfirst.db import check_schema
    from localfirst.errors import NotADatabase

    conn = sqlite3.connect(":memory:")
    assert check_schema(conn, ":memory:")  # empty: every migration is pending
    conn.execute("CREATE TABLE notes (x)")
    with pytest.raises(NotADatabase, match="not a localfirst one"):
        check_schema(conn, "notes.db")
