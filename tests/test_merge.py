import shutil
import sqlite3
import time

import pytest
from helpers import assert_one_line_error, dump
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localfirst.errors import BadInput, DatabaseError, NotADatabase, NotFound, SchemaTooNew
from localfirst.records import Attachment, Part, Response
from localfirst.store import Store
from sync.merge import merge_database

SYNCED = {
    "conversations": "id, name, model, created_utc, name_hlc",
    "responses": "id, conversation_id, model, prompt, response, datetime_utc, extras, simulated",
    "parts": "response_id, ordinal, role, type, text, tool_call_id, attachment_id",
    "attachments": "id, mime_type, size, content",
    "tombstones": "tbl, key, hlc",
}


def canonical(store: Store) -> dict[str, list[tuple]]:
    return {t: sorted(store.conn.execute(f"SELECT {cols} FROM {t}").fetchall()) for t, cols in SYNCED.items()}


def new_store(path) -> Store:
    return Store.open(path)


def copy_of(store: Store, target) -> tuple[Store, Store]:
    """Close ``store``, copy its file to ``target``; both opened again."""
    store.close()
    shutil.copy(store.path, target)
    return Store.open(store.path), Store.open(target)


def test_merge_adds_rows_and_is_idempotent(tmp_path):
    a, b = new_store(tmp_path / "a.db"), new_store(tmp_path / "b.db")
    a.log(Response(model="m", prompt="from a", response="alpha"))
    b.log(Response(model="m", prompt="from b", response="bravo", parts=[
        Part(type="attachment", role="user", attachment=Attachment(b"img", "image/png")),
        Part(type="text", text="bravo")]))
    first = merge_database(a, b.path)
    assert first.added == {"conversations": 1, "attachments": 1, "responses": 1, "parts": 2,
                           "templates": 0, "template_versions": 0, "template_labels": 0}
    snapshot = canonical(a)
    second = merge_database(a, b.path)
    assert second.total == 0
    assert canonical(a) == snapshot
    # full-text search covers merged rows
    assert [r.prompt for r in a.list_responses(query="bravo")] == ["from b"]


def test_merge_is_commutative_with_renames_and_deletes(tmp_path):
    a, b = new_store(tmp_path / "a.db"), new_store(tmp_path / "b.db")
    shared = a.log(Response(model="m", prompt="shared"))
    merge_database(b, a.path)
    cid = a.get_response(shared).conversation_id
    a.rename_conversation(cid, "named on a")
    b.rename_conversation(cid, "named on b later")
    b.delete([shared])
    a.log(Response(model="m", prompt="only a"))
    a.close()
    b.close()
    ab = tmp_path / "ab.db"
    ba = tmp_path / "ba.db"
    shutil.copy(a.path, ab)
    shutil.copy(b.path, ba)
    s_ab, s_ba = Store.open(ab), Store.open(ba)
    merge_database(s_ab, b.path)
    merge_database(s_ba, a.path)
    assert canonical(s_ab) == canonical(s_ba)
    assert s_ab.list_responses(query="shared") == []  # the deletion won over the older row


def test_a_deleted_row_never_comes_back_from_an_older_copy(tmp_path):
    a = new_store(tmp_path / "a.db")
    rid = a.log(Response(model="m", prompt="regrettable"))
    a, old = copy_of(a, tmp_path / "old.db")
    old.close()
    a.delete([rid])
    result = merge_database(a, tmp_path / "old.db")
    assert result.added["responses"] == 0
    assert a.list_responses(count=0) == []


def test_merged_tombstones_delete_here(tmp_path):
    a = new_store(tmp_path / "a.db")
    rid = a.log(Response(model="m", prompt="to be deleted elsewhere"))
    a, b = copy_of(a, tmp_path / "b.db")
    b.delete([rid])
    result = merge_database(a, b.path)
    assert result.deleted >= 1
    assert a.list_responses(count=0) == []


def test_merge_advances_the_clock_past_what_it_saw(tmp_path):
    a, b = new_store(tmp_path / "a.db"), new_store(tmp_path / "b.db")
    rid = b.log(Response(model="m", prompt="x"))
    cid = b.get_response(rid).conversation_id
    ahead = time.time_ns() // 1_000_000 + 3_600_000
    with b.write() as conn:  # b's clock runs an hour ahead of a's wall clock
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('hlc', ?)", [f"{ahead:013d}.0000.{b.host_id}"])
    b.rename_conversation(cid, "future name")
    merge_database(a, b.path)
    a.rename_conversation(cid, "edited after seeing it")
    merge_database(b, a.path)
    assert a.conversations()[0].name == b.conversations()[0].name == "edited after seeing it"


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("log"), st.sampled_from("ab"), st.text(min_size=1, max_size=8)),
        st.tuples(st.just("rename"), st.sampled_from("ab"), st.text(max_size=8)),
        st.tuples(st.just("delete"), st.sampled_from("ab"), st.integers(0, 20)),
    ),
    max_size=12,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_merge_algebra(tmp_path_factory, ops):
    """Commutative (a+b == b+a) and idempotent (merging again changes nothing)."""
    d = tmp_path_factory.mktemp("algebra")
    stores = {"a": new_store(d / "a.db"), "b": new_store(d / "b.db")}
    seed = stores["a"].log(Response(model="m", prompt="seed"))
    merge_database(stores["b"], d / "a.db")
    cid = stores["a"].get_response(seed).conversation_id
    for op, who, arg in ops:
        s = stores[who]
        if op == "log":
            s.log(Response(model="m", prompt=arg, conversation_id=cid if s.conversation_exists(cid) else None))
        elif op == "rename" and s.conversation_exists(cid):
            s.rename_conversation(cid, arg)
        elif op == "delete":
            rows = s.list_responses(count=0)
            if rows:
                s.delete([rows[arg % len(rows)].id])
    for s in stores.values():
        s.close()
    shutil.copy(d / "a.db", d / "ab.db")
    shutil.copy(d / "b.db", d / "ba.db")
    ab, ba = Store.open(d / "ab.db"), Store.open(d / "ba.db")
    merge_database(ab, d / "b.db")
    merge_database(ba, d / "a.db")
    assert canonical(ab) == canonical(ba)
    again = canonical(ab)
    assert merge_database(ab, d / "b.db").total == 0
    assert canonical(ab) == again
    ab.close()
    ba.close()


# -- bad input -------------------------------------------------------------

def test_merge_refuses_bad_files_and_changes_nothing(tmp_path):
    a = new_store(tmp_path / "a.db")
    a.log(Response(model="m", prompt="mine"))
    before = canonical(a)
    text = tmp_path / "notes.txt"
    text.write_text("not a database at all\n" * 50)
    with pytest.raises(NotADatabase):
        merge_database(a, text)
    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE x (y)")
    conn.commit()
    conn.close()
    with pytest.raises(NotADatabase):
        merge_database(a, foreign)
    with pytest.raises(NotFound):
        merge_database(a, tmp_path / "missing.db")
    with pytest.raises(BadInput):
        merge_database(a, a.path)
    newer = tmp_path / "newer.db"
    Store.open(newer).close()
    conn = sqlite3.connect(newer)
    conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('localfirst', 'm999', 'x')")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaTooNew):
        merge_database(a, newer)
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    with pytest.raises(DatabaseError):
        merge_database(a, empty)
    assert canonical(a) == before


def test_merge_refuses_a_corrupt_file(tmp_path):
    a = new_store(tmp_path / "a.db")
    b = new_store(tmp_path / "b.db")
    for i in range(300):
        b.log(Response(model="m", prompt=f"row {i} " + "z" * 200))
    b.close()
    data = bytearray((tmp_path / "b.db").read_bytes())
    for offset in range(8192, len(data), 4096):
        data[offset + 10: offset + 200] = b"\x13" * 190
    (tmp_path / "b.db").write_bytes(bytes(data))
    before = canonical(a)
    with pytest.raises(NotADatabase):
        merge_database(a, tmp_path / "b.db")
    assert canonical(a) == before


def test_merge_command(run, tmp_path):
    other = tmp_path / "other.db"
    assert run("--db", str(other), "log", "-m", "m", "-p", "elsewhere").code == 0
    result = run("merge", str(other))
    assert result.code == 0 and "added" in result.out and "1 response," in result.out
    assert "elsewhere" in run("logs", "list").out
    text = tmp_path / "t.txt"
    text.write_text("hello")
    from localfirst import paths
    before = dump(paths.default_db_path())
    assert_one_line_error(run("merge", str(text)), "not an SQLite database")
    assert_one_line_error(run("merge", str(tmp_path / "nope.db")), "does not exist")
    assert dump(paths.default_db_path()) == before


def damage_freelist_count(path):
    """A wrong free-page count in the header: SQLite opens and reads the file, only a check finds it."""
    data = bytearray(path.read_bytes())
    data[36:40] = (5).to_bytes(4, "big")
    path.write_bytes(bytes(data))


def test_merge_refuses_a_file_that_only_an_integrity_check_finds_corrupt(tmp_path):
    a = new_store(tmp_path / "a.db")
    b = new_store(tmp_path / "b.db")
    b.log_many([Response(model="m", prompt=f"row {i} " + "z" * 300) for i in range(300)])
    b.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    b.close()
    damage_freelist_count(tmp_path / "b.db")
    verdict = sqlite3.connect(tmp_path / "b.db").execute("PRAGMA quick_check").fetchone()[0]
    assert verdict != "ok"
    before = canonical(a)
    with pytest.raises(NotADatabase, match="corrupt"):
        merge_database(a, tmp_path / "b.db")
    assert canonical(a) == before


def test_attachments_of_deleted_responses_do_not_come_back(tmp_path):
    a = new_store(tmp_path / "a.db")
    rid = a.log(Response(model="m", prompt="see", parts=[
        Part(type="attachment", role="user", attachment=Attachment(b"SECRET BYTES", "text/plain"))]))
    a, b = copy_of(a, tmp_path / "b.db")
    a.delete([rid])
    merge_database(a, tmp_path / "b.db")
    assert a.conn.execute("SELECT count(*) FROM attachments").fetchone()[0] == 0
    merge_database(b, tmp_path / "a.db")
    assert b.conn.execute("SELECT count(*) FROM attachments").fetchone()[0] == 0


def test_a_conversation_continued_elsewhere_survives_deleting_its_last_response(tmp_path):
    a = new_store(tmp_path / "a.db")
    first = a.log(Response(model="m", prompt="one"))
    cid = a.get_response(first).conversation_id
    a, b = copy_of(a, tmp_path / "b.db")
    second = b.log(Response(model="m", prompt="two", conversation_id=cid))
    a.delete([first])
    merge_database(a, b.path)
    assert [r.id for r in a.history(cid)] == [second]
    assert a.pick_conversation(continue_latest=True) == cid


def test_a_deleted_conversation_takes_responses_added_elsewhere_along(tmp_path):
    a = new_store(tmp_path / "a.db")
    first = a.log(Response(model="m", prompt="one"))
    cid = a.get_response(first).conversation_id
    a, b = copy_of(a, tmp_path / "b.db")
    b.log(Response(model="m", prompt="two", conversation_id=cid))
    a.delete(a.select_for_delete(conversation_id=cid), conversation_id=cid)
    merge_database(a, b.path)
    merge_database(b, a.path)
    for s in (a, b):
        assert s.list_responses(count=0) == [] and not s.conversation_exists(cid)


def test_merge_refuses_a_clock_far_in_the_future(tmp_path):
    a, b = new_store(tmp_path / "a.db"), new_store(tmp_path / "b.db")
    rid = b.log(Response(model="m", prompt="x"))
    with b.write() as conn:
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('hlc', ?)", ["9999999999999.0000." + b.host_id])
    b.rename_conversation(b.get_response(rid).conversation_id, "from 2286")
    before = canonical(a)
    with pytest.raises(DatabaseError, match="future"):
        merge_database(a, b.path)
    assert canonical(a) == before


def test_a_merge_larger_than_one_batch(tmp_path, monkeypatch):
    """The other file is read in batches while this one is written: every batch lands."""
    from sync import merge as merge_module

    monkeypatch.setattr(merge_module, "BATCH", 7)
    a, b = new_store(tmp_path / "a.db"), new_store(tmp_path / "b.db")
    b.log_many([Response(model="m", prompt=f"p{i}", parts=[Part(type="text", text=f"r{i}")]) for i in range(40)])
    result = merge_database(a, b.path)
    assert result.added["responses"] == 40 and result.added["parts"] == 40
    assert canonical(a)["responses"] == canonical(b)["responses"]
    assert merge_database(a, b.path).total == 0
