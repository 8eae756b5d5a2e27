"""localfirst backup: a consistent copy while others write, without this machine's sync identity."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from helpers import assert_one_line_error

import sync
from localfirst.backup import backup
from localfirst.records import Response
from localfirst.store import Store


def test_a_backup_taken_while_another_process_writes_is_consistent(tmp_path: Path) -> None:
    live = Store.open(tmp_path / "live.db")
    live.log_many([Response(model="m", prompt=f"before {i}") for i in range(200)])
    stop = threading.Event()

    def writer() -> None:
        other = Store.open(tmp_path / "live.db")
        while not stop.is_set():
            other.log_many([Response(model="m", prompt="during") for _ in range(20)])
        other.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        copies = [backup(live, tmp_path / f"copy{i}.db") for i in range(3)]
    finally:
        stop.set()
        thread.join()
    for result in copies:
        conn = sqlite3.connect(result.path)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.execute("INSERT INTO responses_fts (responses_fts) VALUES ('integrity-check')")
        count = conn.execute("SELECT count(*) FROM responses").fetchone()[0]
        assert count == result.responses and count >= 200 and (count - 200) % 20 == 0
        assert conn.execute("SELECT count(*) FROM meta WHERE key = 'host_id'").fetchone()[0] == 0
        conn.close()


def test_a_restored_backup_syncs_as_a_new_machine_not_a_fork(tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    remote.mkdir()
    original = Store.open(tmp_path / "a.db")
    sync.add_remote(original, "origin", remote.as_uri())
    original.log(Response(model="m", prompt="before the backup"))
    sync.sync(original)
    backup(original, tmp_path / "b.db")
    restored = Store.open(tmp_path / "b.db")
    assert restored.host_id != original.host_id
    restored.log(Response(model="m", prompt="on the restored machine"))
    original.log(Response(model="m", prompt="on the original machine"))
    sync.sync(restored)
    sync.sync(original)
    sync.sync(restored)
    for s in (original, restored):
        assert sorted(r.prompt or "" for r in s.list_responses(count=0)) == [
            "before the backup", "on the original machine", "on the restored machine"]


def test_backup_refuses_an_existing_file_a_missing_directory_and_itself(run, tmp_path: Path) -> None:
    from localfirst import paths

    run("log", "-m", "m", "-p", "hello")
    (tmp_path / "exists.db").write_bytes(b"keep me")
    assert_one_line_error(run("backup", str(tmp_path / "exists.db")), "exists")
    assert (tmp_path / "exists.db").read_bytes() == b"keep me"
    assert_one_line_error(run("backup", str(tmp_path / "no" / "x.db")), "does not exist")
    assert_one_line_error(run("backup", str(paths.default_db_path())), "exists")
    ok = run("backup", str(tmp_path / "new.db"))
    assert ok.code == 0 and "Backed up 1 responses" in ok.out
    assert not list(tmp_path.glob(".*.partial"))
