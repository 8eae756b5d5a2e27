"""The registry of synced tables: keys, and agreement with the schema and the triggers."""

from __future__ import annotations

import re

from localfirst.registry import TABLES, TOMBSTONE_KINDS, capture_sql, present
from localfirst.store import Store
from sync.tables import check_key_value, columns

_AFFINITY = {"ulid": "TEXT", "sha256": "TEXT", "ordinal": "INTEGER", "text": "TEXT", "name": "TEXT",
             "json": "TEXT", "object": "TEXT", "int": "INTEGER", "real": "REAL", "bool": "INTEGER",
             "blob": "BLOB", "time": "TEXT", "hlc": "TEXT"}


def _normal(sql: str) -> str:
    return re.sub(r"\s+", " ", sql).strip().rstrip(";")


def test_every_synced_table_is_keyed_by_ulid_hash_or_ulid_and_ordinal_or_name(fresh_store: Store) -> None:
    conn = fresh_store.conn
    for table in present(conn):
        kinds = sorted(table.columns[k].kind for k in table.key)
        # (ULID, name): a label of one template, unique because the template's id is
        assert kinds in (["ulid"], ["sha256"], ["ordinal", "ulid"], ["name", "ulid"]), table.name
        info = {r[1]: r for r in conn.execute(f"PRAGMA table_info({table.name})")}
        unique = [
            [r[2] for r in conn.execute(f"PRAGMA index_info('{idx[1]}')")]
            for idx in conn.execute(f"PRAGMA index_list({table.name})") if idx[2]
        ]
        pk = [name for name, r in sorted(info.items(), key=lambda kv: kv[1][5]) if r[5]]
        assert sorted(table.key) in [sorted(pk)] + [sorted(u) for u in unique], table.name
        # An integer primary key is a local row number: it must never be synced.
        for name, r in info.items():
            if r[5] and r[2].upper() == "INTEGER" and len(pk) == 1:
                assert name in table.local and name not in columns(conn, table), table.name


def test_the_registry_and_the_schema_agree_column_by_column(fresh_store: Store) -> None:
    conn = fresh_store.conn
    assert [t.name for t in present(conn)] == [t.name for t in TABLES]
    for table in TABLES:
        info = {r[1]: r for r in conn.execute(f"PRAGMA table_info({table.name})")}
        assert set(info) == set(table.columns) | table.local, table.name
        for name, column in table.columns.items():
            _, _, declared, notnull, default, pk = info[name]
            assert declared.upper() == _AFFINITY[column.kind], (table.name, name)
            assert bool(notnull or pk) == column.required, (table.name, name)
            expected = None if column.default is None else repr(column.default).replace('"', "'")
            assert default == expected, (table.name, name)
        for col, stamp in table.mutable.items():
            assert table.columns[stamp].kind == "hlc" and col not in table.immutable


def test_the_capture_triggers_are_the_ones_the_registry_makes(fresh_store: Store) -> None:
    conn = fresh_store.conn
    found = {name: _normal(sql) for name, sql in conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'sync_capture_%'")}
    wanted = {}
    for table in [*TABLES, None]:
        for statement in capture_sql(table).split("END;"):
            if statement.strip():
                text = _normal(statement + "END")
                wanted[re.search(r"CREATE TRIGGER (\w+)", text).group(1)] = text  # type: ignore[union-attr]
    assert found == wanted


def test_parents_come_before_children_and_references_are_registered() -> None:
    order = [t.name for t in TABLES]
    for table in TABLES:
        if table.parent:
            assert order.index(table.parent[0]) < order.index(table.name)
        for target in table.carries.values():
            # A carried row is applied before the rows that carry it.
            assert order.index(target) < order.index(table.name)
        for tbl, col in table.tombstones:
            assert col in table.columns and tbl in TOMBSTONE_KINDS
    assert TOMBSTONE_KINDS == {"conversations": "ulid", "responses": "ulid", "templates": "ulid"}


def test_key_checks_refuse_anything_that_is_not_a_key() -> None:
    assert check_key_value("ulid", "01h00000000000000000000000")
    for bad in ["../x", "01H00000000000000000000000", "01h0000000000000000000000", "01h00000000000000000000000\n",
                None, 5, "01h0000000000000000000000u"]:
        assert not check_key_value("ulid", bad)
    assert check_key_value("sha256", "a" * 64) and not check_key_value("sha256", "A" * 64)
    assert check_key_value("ordinal", 0) and not check_key_value("ordinal", True)
    assert not check_key_value("ordinal", -1) and not check_key_value("ordinal", "1")
    assert check_key_value("name", "production") and not check_key_value("name", "../etc")
    assert not check_key_value("name", "a'b") and not check_key_value("name", 1)
