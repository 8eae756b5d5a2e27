"""A pull checks the next changeset while it applies one: the two threads take turns where they must."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from synctools import HLC, del_lines, dump, log, new_store, raw_changeset

import sync
from localfirst.errors import CorruptObject
from localfirst.store import Store
from sync import receive
from sync.apply import Applier
from sync.changeset import PARSE_CHUNK, check_ops, decode
from sync.check import Schema, Turns

T = "2026-11-30T12:00:00.000000Z"

def test_a_changeset_of_many_chunks_decodes_whole(schema: Schema) -> None:
    n = PARSE_CHUNK * 2 + 7
    _, checked = decode(raw_changeset(del_lines(n)), schema, where="x")
    assert [d[1] for d in checked.dels] == [f"01h{i:023d}" for i in range(n)]


@pytest.mark.parametrize("at", [0, PARSE_CHUNK - 1, PARSE_CHUNK, PARSE_CHUNK * 2 + 3])
@pytest.mark.parametrize("damage", ["{not json", '{"op": "del"}, {"op": "del"}', "[1, 2"])
def test_a_bad_line_is_named_in_any_chunk(schema: Schema, at: int, damage: str) -> None:
    """The line number is the line's own, however the lines were parsed together."""
    lines = del_lines(PARSE_CHUNK * 2 + 7)
    lines[at] = damage
    with pytest.raises(CorruptObject, match=f"^x line {at + 2} is not JSON"):
        decode(raw_changeset(lines), schema, where="x")


def test_a_bad_value_in_a_later_chunk_is_named(schema: Schema) -> None:
    lines = del_lines(PARSE_CHUNK * 3)
    lines[PARSE_CHUNK * 2 + 10] = json.dumps({"op": "del", "table": "responses", "key": "../etc", "hlc": HLC})
    with pytest.raises(CorruptObject, match=f"^x line {PARSE_CHUNK * 2 + 12}: invalid key"):
        decode(raw_changeset(lines), schema, where="x")


def test_pause_waits_while_the_applier_binds() -> None:
    turns = Turns()
    passed = threading.Event()

    def checker() -> None:
        turns.pause()
        passed.set()

    with turns.binding():
        thread = threading.Thread(target=checker)
        thread.start()
        assert not passed.wait(0.2), "the checker went on while rows were being bound"
    assert passed.wait(5), "the checker was not let go once the rows were bound"
    thread.join()


def test_binding_lets_go_when_it_fails() -> None:
    turns = Turns()
    with pytest.raises(sqlite3.OperationalError), turns.binding():
        sqlite3.connect(":memory:").executemany("INSERT INTO nowhere VALUES (?)", [(1,)])
    start = time.monotonic()
    turns.pause()
    assert time.monotonic() - start < 1


class _Watched:
    """A connection that records, for every batch of rows bound, whether the checker was held back."""

    def __init__(self, conn: Any, turns: Turns) -> None:
        self._conn, self._turns = conn, turns
        self.held: list[bool] = []

    def executemany(self, sql: str, rows: Any) -> Any:
        self.held.append(not self._turns._free.is_set())
        return self._conn.executemany(sql, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def test_the_applier_holds_the_checker_back_while_it_binds(fresh_store: Store, schema: Schema) -> None:
    cid = "01h" + "1" * 23
    raws = [{"op": "set", "table": "conversations",
             "row": {"id": cid, "name": None, "model": "m", "created_utc": T, "name_hlc": ""}}]
    for i in range(5):
        rid = f"01h{i:023d}"
        raws.append({"op": "put", "table": "responses",
                     "row": {"id": rid, "conversation_id": cid, "model": "m", "datetime_utc": T}})
        raws.append({"op": "put", "table": "parts",
                     "row": {"response_id": rid, "ordinal": 0, "role": "user", "type": "text", "text": "hi"}})
    batch = check_ops(raws, schema, newer=False)
    turns = Turns()
    watched = _Watched(fresh_store.conn, turns)
    with fresh_store.write():
        Applier(watched, schema, turns=turns).apply(batch)  # type: ignore[arg-type]
    assert len(watched.held) == 3 and all(watched.held)  # conversations, responses, parts
    assert turns._free.is_set()
    assert fresh_store.conn.execute("SELECT count(*) FROM parts").fetchone()[0] == 5


def test_a_pull_of_many_changesets_pauses_its_checker_and_applies_everything(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    remote = f"file://{tmp_path / 'remote'}"
    a = new_store(tmp_path / "a.db")
    sync.add_remote(a, "origin", remote)
    for i in range(4):  # one changeset per push
        log(a, f"hello {i}")
        sync.push(a)
    paused_in: set[str] = set()

    class Recording(Turns):
        def pause(self) -> None:
            paused_in.add(threading.current_thread().name)
            super().pause()

    monkeypatch.setattr(receive, "Turns", Recording)
    b = new_store(tmp_path / "b.db")
    sync.add_remote(b, "origin", remote)
    result = sync.pull(b)
    assert result.changesets == 4
    assert paused_in and all(name.startswith("localfirst-decode") for name in paused_in)
    assert dump(b) == dump(a)


def test_a_pull_stages_in_memory_and_puts_the_settings_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    remote = f"file://{tmp_path / 'remote'}"
    a = new_store(tmp_path / "a.db")
    sync.add_remote(a, "origin", remote)
    log(a, "hello")
    sync.push(a)
    b = new_store(tmp_path / "b.db")
    sync.add_remote(b, "origin", remote)
    before = [b.conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("cache_size", "temp_store")]
    seen: list[tuple[int, int]] = []
    real = receive.apply_checked

    def watching(conn: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append((conn.execute("PRAGMA cache_size").fetchone()[0], conn.execute("PRAGMA temp_store").fetchone()[0]))
        return real(conn, *args, **kwargs)

    monkeypatch.setattr(receive, "apply_checked", watching)
    assert sync.pull(b).changesets == 1
    assert seen == [(-65536, 2)]  # 64 MB of cache; temporary tables in memory
    assert [b.conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("cache_size", "temp_store")] == before
    assert dump(b) == dump(a)
