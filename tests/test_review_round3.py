"""Review of the pull's checker/applier turns, the chunked parse of changesets and the threaded `import llm`."""

from __future__ import annotations

import builtins
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from synctools import HLC, del_lines, new_store, raw_changeset

from bench.importer import make_current
from localfirst.errors import CorruptObject, Interrupted
from localfirst.importers import llm as llm_import
from sync.changeset import PARSE_CHUNK, decode
from sync.check import Schema, Turns

ROOT = Path(__file__).resolve().parent.parent

# -- a line that is not one JSON value is refused, whatever the others hold ------------------------

@pytest.mark.parametrize("at", [0, 100, PARSE_CHUNK - 3])
def test_a_line_split_in_two_is_refused_even_when_another_line_holds_two_values(schema: Schema, at: int) -> None:
    """Joined with commas, the two halves make one op and the doubled line two: as many ops as lines."""
    lines = del_lines(PARSE_CHUNK + 10)
    lines[at] = lines[at][:-1] + ', "note": "a'
    lines[at + 1] = 'b"}'
    lines[at + 2] = f"{lines[at + 2]}, {lines[at + 2]}"
    with pytest.raises(CorruptObject, match=f"^x line {at + 2} is not JSON"):
        decode(raw_changeset(lines), schema, where="x")


def test_an_object_split_across_lines_is_refused(schema: Schema) -> None:
    lines = del_lines(20)
    lines[3] = '{"op": "del", "table": "responses", "x": [{}'
    lines[4] = '{}], "key": "01h' + "4" * 23 + f'", "hlc": "{HLC}"}}'
    lines[9] = f"{lines[9]},{lines[9]}"
    with pytest.raises(CorruptObject, match="^x line 5 is not JSON"):
        decode(raw_changeset(lines), schema, where="x")


def test_lines_with_spaces_around_their_value_still_decode(schema: Schema) -> None:
    lines = del_lines(PARSE_CHUNK + 3)
    lines[7] = f"  {lines[7]}\t"
    lines[PARSE_CHUNK + 1] = f"{lines[PARSE_CHUNK + 1]}\r"
    _, checked = decode(raw_changeset(lines), schema, where="x")
    assert [d[1] for d in checked.dels] == [f"01h{i:023d}" for i in range(PARSE_CHUNK + 3)]


# -- an interrupt as the applier starts binding never leaves the checker waiting -------------------

class _InterruptedEvent(threading.Event):
    """An Event whose first clear() is followed by a Ctrl-C, as a signal arriving just then would be."""

    def __init__(self) -> None:
        super().__init__()
        self.cleared = 0

    def clear(self) -> None:
        super().clear()
        self.cleared += 1
        if self.cleared == 1:
            raise KeyboardInterrupt


def test_an_interrupt_as_binding_starts_lets_the_checker_go() -> None:
    turns = Turns()
    turns._free = _InterruptedEvent()
    turns._free.set()
    with pytest.raises(KeyboardInterrupt), turns.binding():
        pass
    passed = threading.Event()
    thread = threading.Thread(target=lambda: (turns.pause(), passed.set()), daemon=True)
    thread.start()
    assert passed.wait(5), "the checker was left waiting for an applier that is gone"


def test_leaving_the_turns_lets_the_checker_go_for_good() -> None:
    with Turns() as turns:
        turns._free.clear()  # as an applier stopped half way through binding would leave it
    passed = threading.Event()
    thread = threading.Thread(target=lambda: (turns.pause(), passed.set()), daemon=True)
    thread.start()
    assert passed.wait(5)


_PULL_INTERRUPTED = """
import sys, threading, tempfile
from pathlib import Path
sys.path[:0] = [{tests!r}, {root!r}]
from synctools import new_store, log
import sync
from sync import check

d = Path(tempfile.mkdtemp())
remote = f"file://{{d / 'remote'}}"
a = new_store(d / "a.db")
sync.add_remote(a, "origin", remote)
for i in range(3):
    log(a, f"hello {{i}}")
    sync.push(a)
b = new_store(d / "b.db")
sync.add_remote(b, "origin", remote)

class Interrupted(threading.Event):
    def clear(self):
        super().clear()
        if threading.current_thread() is threading.main_thread():
            raise KeyboardInterrupt  # Ctrl-C arriving as the applier holds the checker back

def init(self):
    self._free = Interrupted()
    self._free.set()

check.Turns.__init__ = init
try:
    sync.pull(b)
except KeyboardInterrupt:
    print("interrupted")
print("threads", [t.name for t in threading.enumerate() if t.name.startswith("localfirst")])
print("applied", b.conn.execute("SELECT count(*) FROM responses").fetchone()[0],
      b.conn.execute("SELECT count(*) FROM sync_chain WHERE seq > 0").fetchone()[0])
"""


def test_a_pull_interrupted_as_the_applier_binds_ends_and_leaves_no_thread() -> None:
    """In a process of its own: before the fix, the pull waited forever for its paused checker."""
    script = _PULL_INTERRUPTED.format(tests=str(ROOT / "tests"), root=str(ROOT))
    try:
        done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                              timeout=120, cwd=ROOT)
    except subprocess.TimeoutExpired:
        pytest.fail("the pull hung: its checker waits for an applier that was interrupted")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["interrupted", "threads []", "applied 0 0"]


# -- an import interrupted while a batch is written counts only the batches that landed ------------

def test_an_import_interrupted_while_writing_a_batch_counts_only_whole_batches(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_current(tmp_path / "logs.db", 1200)
    store = new_store()
    writes: list[int] = []
    real_write = llm_import._write

    def counting(*args: Any) -> None:
        writes.append(1)
        real_write(*args)

    def enumerate_then_interrupt(items: Any, *args: Any) -> Any:
        if len(writes) == 2:
            raise KeyboardInterrupt  # Ctrl-C once the second batch's responses are inserted, before its parts
        return builtins.enumerate(items, *args)

    monkeypatch.setattr(llm_import, "_write", counting)
    monkeypatch.setattr(llm_import, "enumerate", enumerate_then_interrupt, raising=False)
    with pytest.raises(Interrupted, match="^import interrupted: 500 responses were imported in whole batches"):
        llm_import.import_llm(store, tmp_path / "logs.db", batch=500)
    assert store.conn.execute("SELECT count(*) FROM responses").fetchone()[0] == 500
    assert not store.conn.in_transaction
    assert not [t for t in threading.enumerate() if t.name.startswith("localfirst-import")]
    monkeypatch.undo()
    again = llm_import.import_llm(store, tmp_path / "logs.db", batch=500)
    assert (again.already, again.imported) == (500, 700)
    ids = [r[0] for r in store.conn.execute("SELECT id FROM responses")]
    assert len(ids) == len(set(ids)) == 1200
