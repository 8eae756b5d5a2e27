"""Every command works at any size: no SQL list with one variable per row, output streamed.

The sizes here are small (a little over SQLite's smallest variable limit);
the scale runs are in bench/million.py.
"""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from synctools import new_store

import sync
from bench.importer import make_current, make_legacy
from localfirst.errors import Interrupted
from localfirst.exporters import export
from localfirst.importers import llm as llm_import
from localfirst.records import Part, Response
from localfirst.store import STREAM_CHUNK, Store

N = 1200  # more rows than the 999 variables the limit below allows
LIMIT = 999


def limited(store: Store) -> Store:
    store.conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, LIMIT)
    return store


def fill(store: Store, n: int = N, *, prefix: str = "p") -> None:
    store.log_many([
        Response(model="m", prompt=f"{prefix}{i}", parts=[Part(type="text", text=f"answer {i}")],
                 datetime_utc=f"2026-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}.{i:06d}Z")
        for i in range(n)
    ])


@pytest.fixture
def big(tmp_path: Path) -> Store:
    store = Store.open(tmp_path / "big.db")
    fill(store)
    return limited(store)


def test_list_and_every_export_run_under_a_small_variable_limit(big: Store, tmp_path: Path) -> None:
    everything = big.list_responses(count=0)
    assert len(everything) == N and all(len(r.parts) == 1 for r in everything)
    assert [r.prompt for r in everything] == [f"p{i}" for i in range(N)]
    latest = big.list_responses(count=N - 100)
    assert [r.prompt for r in latest] == [f"p{i}" for i in range(100, N)]
    assert len(big.list_responses(count=5, query="answer")) == 5
    for fmt in ("jsonl", "markdown"):
        out = io.StringIO()
        assert export(big, fmt, stream=out).responses == N
    lines = io.StringIO()
    export(big, "jsonl", stream=lines)
    assert [json.loads(line)["prompt"] for line in lines.getvalue().splitlines()] == [f"p{i}" for i in range(N)]
    assert export(big, "llm", output=tmp_path / "llm.db").responses == N
    with sqlite3.connect(tmp_path / "llm.db") as llm:
        assert llm.execute("SELECT count(*) FROM turns").fetchone()[0] == N
        found = llm.execute("SELECT count(*) FROM turn_search_fts WHERE turn_search_fts MATCH 'answer'")
        assert found.fetchone()[0] == N


def test_merge_push_and_pull_run_under_a_small_variable_limit(big: Store, tmp_path: Path) -> None:
    other = Store.open(tmp_path / "other.db")
    fill(other, prefix="o")
    other.close()
    result = sync.merge_database(big, tmp_path / "other.db")
    assert result.added["responses"] == N
    sync.add_remote(big, "origin", f"file://{tmp_path}/remote")
    assert sync.push(big).rows > 2 * N
    reader = limited(new_store())
    sync.add_remote(reader, "origin", f"file://{tmp_path}/remote")
    sync.pull(reader)
    assert len(reader.list_responses(count=0)) == 2 * N


def _limited_source(monkeypatch: pytest.MonkeyPatch) -> None:
    real = llm_import.open_llm

    def open_limited(path: Any, **kwargs: Any) -> Any:
        source = real(path, **kwargs)
        source.conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, LIMIT)
        return source

    monkeypatch.setattr(llm_import, "open_llm", open_limited)


@pytest.mark.parametrize("make", [make_legacy, make_current], ids=["legacy", "current"])
def test_import_runs_under_a_small_variable_limit(make: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _limited_source(monkeypatch)
    make(tmp_path / "logs.db", N)
    store = limited(new_store())
    report = llm_import.import_llm(store, tmp_path / "logs.db", batch=500)
    assert report.imported == N and not report.problems
    assert len(store.list_responses(count=0)) == N


def test_an_interrupted_import_keeps_whole_batches_and_resumes_without_duplicates(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_current(tmp_path / "logs.db", N)
    store = new_store()
    real = llm_import._write
    calls = []

    def interrupt_second(*args: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(*args)

    monkeypatch.setattr(llm_import, "_write", interrupt_second)
    with pytest.raises(Interrupted, match="500 responses were imported"):
        llm_import.import_llm(store, tmp_path / "logs.db", batch=500)
    assert store.conn.execute("SELECT count(*) FROM responses").fetchone()[0] == 500
    assert not store.conn.in_transaction
    monkeypatch.undo()
    again = llm_import.import_llm(store, tmp_path / "logs.db", batch=500)
    assert (again.already, again.imported) == (500, N - 500)
    ids = [r[0] for r in store.conn.execute("SELECT id FROM responses")]
    assert len(ids) == len(set(ids)) == N


def test_the_next_batch_is_read_while_one_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_current(tmp_path / "logs.db", N)
    store = new_store()
    second_read = threading.Event()
    reads: list[str] = []
    overlapped: list[bool] = []
    real_read, real_write = llm_import.read_messages, llm_import._write

    def read(*args: Any, **kwargs: Any) -> Any:
        reads.append(threading.current_thread().name)
        if len(reads) == 2:
            second_read.set()
        return real_read(*args, **kwargs)

    def write(*args: Any) -> None:
        if not overlapped:  # the first batch's write: the second batch is being read meanwhile
            overlapped.append(second_read.wait(5))
        real_write(*args)

    monkeypatch.setattr(llm_import, "read_messages", read)
    monkeypatch.setattr(llm_import, "_write", write)
    report = llm_import.import_llm(store, tmp_path / "logs.db", batch=500)
    assert report.imported == N
    assert overlapped == [True]
    assert len(reads) == 3 and all(name.startswith("localfirst-import") for name in reads)


def test_a_read_that_fails_part_way_keeps_the_batches_before_it(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from localfirst.errors import LocalFirstError

    make_current(tmp_path / "logs.db", N)
    store = new_store()
    real = llm_import.read_messages
    reads: list[int] = []

    def failing_second(*args: Any, **kwargs: Any) -> Any:
        reads.append(1)
        if len(reads) == 2:
            raise sqlite3.DatabaseError("database disk image is malformed")
        return real(*args, **kwargs)

    monkeypatch.setattr(llm_import, "read_messages", failing_second)
    with pytest.raises(LocalFirstError, match="malformed"):
        llm_import.import_llm(store, tmp_path / "logs.db", batch=500)
    assert store.conn.execute("SELECT count(*) FROM responses").fetchone()[0] == 500
    assert not store.conn.in_transaction
    assert not [t for t in threading.enumerate() if t.name.startswith("localfirst-import")]


def test_streaming_reads_a_chunk_before_giving_the_first_response(big: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[int] = []
    real = Store._build

    def counting(self: Store, rows: list[tuple[Any, ...]]) -> list[Response]:
        built.append(len(rows))
        return real(self, rows)

    monkeypatch.setattr(Store, "_build", counting)
    stream = big.stream_responses(count=0)
    first = next(stream)
    assert first.prompt == "p0" and built == [STREAM_CHUNK]
    assert big.conn.in_transaction, "the read holds one snapshot"
    stream.close()
    assert not big.conn.in_transaction
    out = _FirstWrite(built)
    monkeypatch.setattr(sys, "stdout", out)
    from localfirst import cli

    cli.state.store = big
    cli.state.db_path = None
    cli.logs_list(count=0, query=None, model=None, cid=None, since=None, until=None, json_output=True,
                  short=False, truncate_text=False, response_only=False)
    assert out.chunks_before_first_write is not None and out.chunks_before_first_write < N // STREAM_CHUNK
    assert len(json.loads(out.getvalue())) == N


class _FirstWrite(io.StringIO):
    def __init__(self, built: list[int]) -> None:
        super().__init__()
        self.built = built
        self.chunks_before_first_write: int | None = None

    def write(self, text: str) -> int:
        if self.chunks_before_first_write is None:
            self.chunks_before_first_write = len(self.built)
        return super().write(text)


def _cli(db: Path, *args: str, stdout: Any = subprocess.PIPE) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "localfirst", "--db", str(db), *args],
                          stdout=stdout, stderr=subprocess.PIPE, timeout=60)


def test_a_closed_pipe_ends_quietly(big: Store, tmp_path: Path) -> None:
    big.close()
    for args in (["logs", "list", "-n", "0", "--json"], ["export"], ["logs", "list", "-n", "0"]):
        proc = subprocess.Popen([sys.executable, "-m", "localfirst", "--db", str(tmp_path / "big.db"), *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.readline()
        proc.stdout.close()  # what `| head -1` does
        err = proc.stderr.read().decode()
        proc.wait(timeout=60)
        assert err == "", err
        assert proc.returncode in (0, 1)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_is_one_error_line(big: Store, tmp_path: Path) -> None:
    big.close()
    db = tmp_path / "big.db"
    for args in (["logs", "list", "-n", "0", "--json"], ["export", "--format", "markdown"]):
        with open("/dev/full", "w") as full:
            run = _cli(db, *args, stdout=full)
        err = run.stderr.decode()
        assert run.returncode != 0
        assert err.startswith("Error: cannot write the output") and err.count("\n") == 1, err


def test_a_negative_or_absurd_count_is_refused(big: Store, tmp_path: Path) -> None:
    big.close()
    for bad in ("-1", "99999999999999999999999", "many"):
        run = _cli(tmp_path / "big.db", "logs", "list", "-n", bad)
        err = run.stderr.decode()
        assert run.returncode == 2 and err.startswith("Error: ") and err.count("\n") == 1, err
        assert run.stdout == b""


def test_json_output_is_the_same_text_as_one_dump(big: Store) -> None:
    from localfirst.render import json_array

    responses = big.list_responses(count=3)
    items = [r.to_json() for r in responses]
    assert "".join(json_array(items)) == json.dumps(items, ensure_ascii=False, indent=2)
    assert "".join(json_array(iter(()))) == json.dumps([], indent=2)
