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
