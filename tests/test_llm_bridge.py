"""The bridge with llm's own database, tested with llm itself on two machines sharing a folder remote."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from helpers import assert_one_line_error, dump
from llm_dbs import HAVE_LLM, NO_LLM
from llm_machines import Machine, chain_texts, machine

pytestmark = pytest.mark.skipif(not HAVE_LLM, reason=NO_LLM)


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Machine, Machine]:
    """Machines A and B, each with llm and localfirst, linked, and sharing a folder remote."""
    remote = tmp_path / "remote"
    remote.mkdir()
    a, b = machine(tmp_path / "a"), machine(tmp_path / "b")
    a.llm("-m", "echo", "question asked on A")
    for m in (a, b):
        m.lf("remote", "add", "home", remote.as_uri())
        if m is b:
            # B's llm has logged nothing (llm creates its file on a first prompt, logged or not).
            m.llm("-m", "echo", "--no-log", "warm up")
        m.lf("llm", "link")
    return a, b


def _prompts(m: Machine) -> list[str]:
    return sorted(r["prompt"] for r in m.llm_logs())


def test_a_conversation_started_on_a_is_listed_and_continued_by_llm_on_b(pair: tuple[Machine, Machine]) -> None:
    a, b = pair
    (turn_id, thread_id), = a.query("SELECT id, thread_id FROM turns")
    a.lf("sync")
    b.lf("sync")

    listed = b.llm_logs()
    assert [(r["id"], r["conversation_id"], r["prompt"]) for r in listed] == [
        (turn_id, thread_id, "question asked on A")]
    assert json.loads(listed[0]["response"])["prompt"] == "question asked on A"

    # llm -c on B continues A's conversation: the new turn is in A's thread,
    # and the history llm sent along with it holds A's exchange.
    b.llm("-c", "-m", "echo", "follow-up on B")
    (new_id, new_thread, parent), = b.query(
        "SELECT id, thread_id, parent_message_hash FROM turns WHERE id != ?", (turn_id,))
    assert new_thread == thread_id
    history = chain_texts(b, parent)
    assert history[0] == "question asked on A" and history[-1] == "follow-up on B"

    # ... and it comes back to A, in the same conversation, with the same id.
    b.lf("sync")
    a.lf("sync")
    assert sorted((r["id"], r["conversation_id"]) for r in a.llm_logs()) == sorted(
        [(turn_id, thread_id), (new_id, thread_id)])
    (tip,) = a.query("SELECT tip_message_hash FROM threads WHERE id = ?", (thread_id,))[0]
    assert chain_texts(a, tip)[-2] == "follow-up on B"
    assert a.llm("-c", "-m", "echo", "third, on A").returncode == 0


def test_round_trips_never_duplicate(pair: tuple[Machine, Machine]) -> None:
    a, b = pair
    b.llm("-m", "echo", "question asked on B")
    for _ in range(2):
        for m in (a, b, a):
            m.lf("sync")
    for m in (a, b):
        assert _prompts(m) == ["question asked on A", "question asked on B"]
        assert m.query("SELECT count(*) FROM turns")[0][0] == 2
        assert m.query("SELECT count(*) FROM threads")[0][0] == 2
        assert m.lf("logs", "status").stdout.count("2") >= 1
        assert len(json.loads(m.lf("logs", "list", "-n", "0", "--json").stdout)) == 2
    again = json.loads(a.lf("llm", "sync", "--json").stdout)
    assert (again["imported"], again["written"], again["removed"]) == (0, 0, 0)


def test_rows_llm_wrote_are_never_rewritten(pair: tuple[Machine, Machine]) -> None:
    a, b = pair
    a.lf("sync")
    b.llm("-m", "echo", "B's own question")
    # Every row but the full-text index's own pages, which SQLite reorganises as it indexes.
    before = [line for line in dump(b.llm_db) if "INSERT" in line and "_fts" not in line]
    b.lf("sync")
    after = dump(b.llm_db)
    missing = [line for line in before if line not in after]
    assert not missing, missing
    assert len(after) > len(before)


def test_logs_rm_on_b_removes_the_conversation_from_llm_on_a(pair: tuple[Machine, Machine]) -> None:
    a, b = pair
    a.llm("-m", "echo", "-c", "second turn on A")
    a.llm("-m", "echo", "an unrelated question on A")
    a.lf("sync")
    b.lf("sync")
    cid = a.query("SELECT thread_id FROM turns ORDER BY id LIMIT 1")[0][0]
    done = b.lf("logs", "rm", "--conversation", cid, "--yes")
    assert "Removed 2 from the linked llm database" in done.stdout  # B's own llm database, at once
    assert _prompts(b) == ["an unrelated question on A"]
    b.lf("sync")
    assert len(a.llm_logs()) == 3  # A's llm keeps it until A syncs
    out = json.loads(a.lf("sync", "--json").stdout)
    assert out["llm"]["removed"] == 2
    assert _prompts(a) == ["an unrelated question on A"]
    # Gone for good: no thread, and no message or search row still holds the text.
    assert a.query("SELECT count(*) FROM threads WHERE id = ?", (cid,)) == [(0,)]
    text = "\n".join(dump(a.llm_db))
    assert "question asked on A" not in text and "second turn on A" not in text
    assert a.llm("logs", "list", "-q", "second").stdout.strip() == ""
    # And llm's own file is whole, and llm carries on.
    assert a.query("PRAGMA integrity_check") == [("ok",)]
    a.llm("-m", "echo", "-c", "after the delete")
    a.lf("sync")
    assert _prompts(a) == ["after the delete", "an unrelated question on A"]


def test_deleting_one_response_keeps_the_history_of_later_turns(pair: tuple[Machine, Machine]) -> None:
    a, _ = pair
    a.llm("-m", "echo", "-c", "second turn on A")
    first, second = [r[0] for r in a.query("SELECT id FROM turns ORDER BY id")]
    a.lf("llm", "sync")
    a.lf("logs", "rm", second, "--yes")
    assert [r["id"] for r in a.llm_logs()] == [first]
    (tid, tip), = a.query("SELECT id, tip_message_hash FROM threads")
    assert chain_texts(a, tip)[0] == "question asked on A"
    assert "second turn on A" not in "\n".join(dump(a.llm_db))
    a.llm("-m", "echo", "-c", "carry on")
    assert a.query("SELECT thread_id FROM turns ORDER BY id DESC LIMIT 1") == [(tid,)]


# -- bad input ------------------------------------------------------------------


def _both(m: Machine) -> tuple[list[str], list[str]]:
    return dump(m.llm_db), dump(m.home / "logs.db")


def test_link_refuses_a_missing_file(tmp_path: Path) -> None:
    m = machine(tmp_path / "m")
    done = m.lf("llm", "link", check=False)
    assert_one_line_error(done, "no llm database at", str(m.llm_db))
    assert done.returncode == 3
    done = m.lf("llm", "link", str(tmp_path / "nowhere.db"), check=False)
    assert_one_line_error(done, "nowhere.db")


def test_link_refuses_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    m = machine(tmp_path / "m")
    m.llm_db.write_text("not a database\n" * 20)
    assert_one_line_error(m.lf("llm", "link", check=False), "not an SQLite database")
    other = tmp_path / "plain.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    assert_one_line_error(m.lf("llm", "link", str(other), check=False), "not one written by llm")


def test_link_refuses_localfirsts_own_database(tmp_path: Path) -> None:
    m = machine(tmp_path / "m")
    m.lf("log", "-m", "echo", "-p", "q", "-r", "a")
    own = m.home / "logs.db"
    before = dump(own)
    done = m.lf("llm", "link", str(own), check=False)
    assert_one_line_error(done, "localfirst's own database")
    assert dump(own) == before
    # Another localfirst database is no llm database either.
    other = tmp_path / "other"
    machine(other).lf("log", "-m", "echo", "-p", "q", "-r", "a")
    assert_one_line_error(m.lf("llm", "link", str(other / "localfirst" / "logs.db"), check=False),
                          "localfirst database")


@pytest.mark.parametrize("change, says", [
    ("INSERT INTO _llm_migrations (name, applied_at) VALUES ('m099_from_the_future', '')", "newer llm"),
    ("DELETE FROM _llm_migrations WHERE name = 'm027_turns_response_json'", "older llm schema"),
])
def test_a_schema_other_than_llms_current_is_refused(pair: tuple[Machine, Machine], change: str, says: str) -> None:
    a, b = pair
    b.lf("sync")  # B has something to write into A's llm database
    a.lf("sync")
    b.llm("-m", "echo", "waiting on B")
    b.lf("sync")
    conn = sqlite3.connect(a.llm_db)
    conn.execute(change)
    conn.commit()
    conn.close()
    before = _both(a)
    done = a.lf("sync", check=False)
    assert_one_line_error(done, says, str(a.llm_db))
    assert _both(a) == before  # neither database, and nothing pulled
    assert_one_line_error(a.lf("llm", "link", check=False), says)
    assert_one_line_error(a.lf("llm", "sync", check=False), says)
    # Reading it as far as it is understood still works, and unlinking lets sync run.
    assert a.lf("import", "llm").returncode == 0
    a.lf("llm", "unlink")
    assert "Synced" in a.lf("sync").stdout


def test_a_database_locked_longer_than_the_timeout(pair: tuple[Machine, Machine]) -> None:
    a, b = pair
    b.llm("-m", "echo", "from B")
    b.lf("sync")
    before = _both(a)
    holder = sqlite3.connect(a.llm_db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        for args in (("sync",), ("llm", "sync"), ("llm", "link")):
            done = a.lf(*args, check=False, LOCALFIRST_LLM_TIMEOUT="0.2")
            assert_one_line_error(done, "locked", str(a.llm_db))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert _both(a) == before
    a.lf("sync")  # once the lock is gone
    assert "from B" in [r["prompt"] for r in a.llm_logs()]


def test_unlink_and_bad_settings(pair: tuple[Machine, Machine]) -> None:
    a, _ = pair
    assert_one_line_error(a.lf("sync", check=False, LOCALFIRST_LLM_TIMEOUT="soon"), "LOCALFIRST_LLM_TIMEOUT")
    assert "Unlinked" in a.lf("llm", "unlink").stdout
    assert_one_line_error(a.lf("llm", "unlink", check=False), "no llm database is linked")
    assert_one_line_error(a.lf("llm", "sync", check=False), "no llm database is linked")
    # Unlinked, sync leaves llm alone.
    before = dump(a.llm_db)
    assert "llm " not in a.lf("sync").stdout
    assert dump(a.llm_db) == before


@pytest.mark.slow
def test_llm_prompts_in_a_loop_while_the_bridge_writes(tmp_path: Path) -> None:
    import threading

    from localfirst.records import Response
    from localfirst.store import Store

    a = machine(tmp_path / "a")
    a.llm("-m", "echo", "first")
    a.lf("llm", "link")
    loops = 8
    failures: list[str] = []

    def prompt_in_a_loop() -> None:
        for i in range(loops):
            done = a.llm("-m", "echo", f"loop {i}", check=False)
            if done.returncode != 0:
                failures.append(done.stderr)

    worker = threading.Thread(target=prompt_in_a_loop)
    worker.start()
    logged: list[str] = []
    rounds = 0
    while worker.is_alive() or rounds < 2:
        # What other machines would have sent: conversations of several turns.
        store = Store.open(a.home / "logs.db")
        try:
            for c in range(3):
                first = Response(model="m", prompt=f"round {rounds} conversation {c} turn 0", response="r")
                logged += store.log_many([first])
                logged += store.log_many([Response(model="m", prompt=f"round {rounds} conversation {c} turn {t}",
                                                   response="r", conversation_id=first.conversation_id)
                                          for t in (1, 2)])
        finally:
            store.close()
        a.lf("llm", "sync")
        rounds += 1
    worker.join()
    a.lf("llm", "sync")

    assert not failures, failures
    assert a.query("PRAGMA integrity_check") == [("ok",)]
    turns = [r[0] for r in a.query("SELECT id FROM turns")]
    assert len(turns) == len(set(turns)) == 1 + loops + len(logged)
    assert set(logged) <= set(turns)
    listed = a.llm_logs()
    assert len(listed) == len(turns)
    prompts = {r["prompt"] for r in listed}
    assert {f"loop {i}" for i in range(loops)} <= prompts and "first" in prompts
    ours = json.loads(a.lf("logs", "list", "-n", "0", "--json").stdout)
    assert sorted(r["id"] for r in ours) == sorted(turns)
    # Each conversation written by the bridge is one thread whose tip ends its last turn.
    for thread_id, tip in a.query("SELECT id, tip_message_hash FROM threads"):
        last = a.query("SELECT tip_message_hash FROM turns WHERE thread_id = ? ORDER BY id DESC LIMIT 1",
                       (thread_id,))
        assert last == [(tip,)]
