"""The synced-table registry: every synced row has a globally unique key."""

from __future__ import annotations

from localfirst.store import Store
from sync.tables import BY_NAME, TABLES, TOMBSTONE_KINDS, check_key_value, columns, present


def test_every_synced_table_is_keyed_by_ulid_hash_or_ulid_and_ordinal(fresh_store: Store) -> None:
    conn = fresh_store.conn
    for table in present(conn):
        kinds = sorted(table.key.values())
        assert kinds in (["ulid"], ["sha256"], ["ordinal", "ulid"]), table.name
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


def test_parents_come_before_children_and_references_are_registered() -> None:
    order = [t.name for t in TABLES]
    for table in TABLES:
        if table.parent:
            assert order.index(table.parent[0]) < order.index(table.name)
        for target in table.carries.values():
            assert BY_NAME[target].collected
    assert TOMBSTONE_KINDS == {"conversations": "ulid", "responses": "ulid", "templates": "ulid"}


def test_key_checks_refuse_anything_that_is_not_a_key() -> None:
    assert check_key_value("ulid", "01h00000000000000000000000")
    for bad in ["../x", "01H00000000000000000000000", "01h0000000000000000000000", "01h00000000000000000000000\n",
                None, 5, "01h0000000000000000000000u"]:
        assert not check_key_value("ulid", bad)
    assert check_key_value("sha256", "a" * 64) and not check_key_value("sha256", "A" * 64)
    assert check_key_value("ordinal", 0) and not check_key_value("ordinal", True)
    assert not check_key_value("ordinal", -1) and not check_key_value("ordinal", "1")
