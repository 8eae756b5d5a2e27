"""Scale: every command at 20k, 200k (and, opt-in, 1M) responses of ~1.1 KB prose.

Run: ``.venv/bin/python -m bench.million [--sizes 20000,200000,1000000]``.
Builds an llm database of that many turns (bench.importer.make_current),
imports it, then times each command in a child process of its own and
prints its wall time, its peak memory (the child's maximum RSS) and the
ratio to the baseline measured in the same run:

- ``import llm`` against a copy of the file (``cp``);
- ``logs list -n 0 --json`` and ``export --format jsonl`` against a plain
  Python loop that reads every response row and writes it as JSON;
- ``export --format llm`` against ``export --format markdown``;
- pull + apply against ``INSERT ... SELECT`` of the same rows into a fresh
  store (same schema, indexes, full-text triggers);
- ``logs list -n 1`` against ``python -c pass``.

It also adds two remotes and shows the file size before the first push,
after pushing to both, and after a change of every response is pushed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PY = sys.executable


# Children run as an installed copy does, from byte-compiled modules (see bench.common.installed_env).
ENV: dict[str, str] | None = None


def child(args: list[str], *, stdout: int | None = subprocess.DEVNULL) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=stdout, env=ENV)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{args} failed with {proc.returncode}")
    return elapsed, usage.ru_maxrss / 1024


def lf(db: Path, *args: str) -> list[str]:
    return [PY, "-m", "localfirst", "--db", str(db), *args]


def py(code: str) -> list[str]:
    return [PY, "-c", code]


_PLAIN_JSON = """
import json, sqlite3, sys
conn = sqlite3.connect({db!r})
cur = conn.execute("SELECT * FROM responses ORDER BY datetime_utc, id")
names = [d[0] for d in cur.description]
out = sys.stdout
for row in cur:
    out.write(json.dumps(dict(zip(names, row)), ensure_ascii=False) + "\\n")
"""

_INSERT_SELECT = """
import sqlite3
from localfirst.store import Store
store = Store.open({target!r})
conn = store.conn
conn.execute("ATTACH ? AS src", [{source!r}])
conn.execute("BEGIN IMMEDIATE")
for table, cols in (("conversations", "id, name, model, created_utc, name_hlc"),
                    ("responses", "id, conversation_id, model, resolved_model, prompt, system, prompt_json, "
                                  "options_json, response, response_json, reasoning, input_tokens, output_tokens, "
                                  "token_details, duration_ms, datetime_utc, finish_reason, simulated, extras"),
                    ("parts", "response_id, ordinal, role, type, text, tool_call_id, tool_name, arguments_json, "
                              "error, attachment_id, extras")):
    conn.execute(f"INSERT INTO main.{{table}} ({{cols}}) SELECT {{cols}} FROM src.{{table}}")
conn.execute("COMMIT")
"""

_PULL = """
import sync
from localfirst.store import Store
store = Store.open({target!r})
sync.add_remote(store, "origin", {url!r})
sync.pull(store)
"""

_IMPORT = """
from localfirst.importers import import_llm
from localfirst.store import Store
import_llm(Store.open({target!r}), {source!r})
"""


def _pages_mb(db: Path) -> float:
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return os.path.getsize(db) / 1e6


def run(n: int, folder: Path, *, remotes: bool = True) -> list[tuple[str, float, float, str, float, float]]:
    rows: list[tuple[str, float, float, str, float, float]] = []
    llm_db = folder / "logs.db"
    # Built in a child: a child forked from a large parent would count the parent's pages as its peak.
    subprocess.run(py(f"from bench.importer import make_current; make_current(__import__('pathlib').Path("
                      f"{str(llm_db)!r}), {n})"), check=True)
    db = folder / "lf.db"
    t, mem = child(py(_IMPORT.format(target=str(db), source=str(llm_db))))
    bt, bmem = child(["cp", str(llm_db), str(folder / "copy.db")])
    rows.append(("import llm", t, mem, "cp of the file", bt, bmem))
    t, mem = child(lf(db, "logs", "list", "-n", "0", "--json"))
    bt, bmem = child(py(_PLAIN_JSON.format(db=str(db))))
    rows.append(("logs list -n 0 --json", t, mem, "plain row-to-JSON loop", bt, bmem))
    t, mem = child(lf(db, "export", "--format", "jsonl"))
    rows.append(("export --format jsonl", t, mem, "plain row-to-JSON loop", bt, bmem))
    mt, mmem = child(lf(db, "export", "--format", "markdown"))
    rows.append(("export --format markdown", mt, mmem, "plain row-to-JSON loop", bt, bmem))
    t, mem = child(lf(db, "export", "--format", "llm", str(folder / "out-llm.db")))
    rows.append(("export --format llm", t, mem, "export --format markdown", mt, mmem))
    # Pull + apply: push everything to a folder remote first (not timed).
    remote = folder / "remote"
    pusher = folder / "pusher.db"
    shutil.copyfile(db, pusher)
    subprocess.run(lf(pusher, "remote", "add", "origin", f"file://{remote}"), check=True, stdout=subprocess.DEVNULL)
    subprocess.run(lf(pusher, "push"), check=True, stdout=subprocess.DEVNULL)
    t, mem = child(py(_PULL.format(target=str(folder / "pulled.db"), url=f"file://{remote}")))
    bt, bmem = child(py(_INSERT_SELECT.format(target=str(folder / "copied.db"), source=str(db))))
    rows.append((f"pull + apply ({n / t:,.0f}/s)", t, mem, f"INSERT ... SELECT ({n / bt:,.0f}/s)", bt, bmem))
    if remotes:
        rows.append(_two_remotes(db, folder))
    # Start-up.
    runs = 11
    lt = statistics.median(child(lf(db, "logs", "list", "-n", "1"))[0] for _ in range(runs))
    pt = statistics.median(child(py("pass"))[0] for _ in range(runs))
    rows.append(("logs list -n 1 (median of 11)", lt, 0, "python -c pass", pt, 0))
    return rows


def _two_remotes(db: Path, folder: Path) -> tuple[str, float, float, str, float, float]:
    """The outbox with two remotes, and the space a push hands back."""
    two = folder / "two.db"
    shutil.copyfile(db, two)
    for name in ("a", "b"):
        subprocess.run(lf(two, "remote", "add", name, f"file://{folder}/{name}"), check=True,
                       stdout=subprocess.DEVNULL)
    seeded = _pages_mb(two)
    for name in ("a", "b"):
        subprocess.run(lf(two, "push", name), check=True, stdout=subprocess.DEVNULL)
    pushed = _pages_mb(two)
    conn = sqlite3.connect(two)
    conn.execute("UPDATE conversations SET name = 'renamed', name_hlc = '9'")  # a change of every conversation
    conn.commit()
    conn.close()
    changed = _pages_mb(two)
    for name in ("a", "b"):
        subprocess.run(lf(two, "push", name), check=True, stdout=subprocess.DEVNULL)
    return (f"file with 2 remotes: {_pages_mb(db):.0f} MB alone, {seeded:.0f} MB queued, {pushed:.0f} MB "
            f"pushed, {changed:.0f} MB after a change, {_pages_mb(two):.0f} MB pushed again", 0, 0, "", 0, 0)


def main() -> None:
    global ENV
    from .common import installed_env

    ENV = installed_env()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000,200000", help="comma-separated response counts (1000000: opt-in)")
    parser.add_argument("--no-remotes", action="store_true",
                        help="leave out the two-remote outbox rows (four pushes of everything)")
    parser.add_argument("--tmp", default=None, help="folder for the databases (1,000,000 needs ~20 GB)")
    args = parser.parse_args()
    for n in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
            rows = run(n, Path(tmp), remotes=not args.no_remotes)
        print(f"\n{n:,} responses of ~1.1 KB prose")
        print(f"| what | time | peak | baseline | time | peak | ratio |\n|{' --- |' * 7}")
        for what, t, mem, base, bt, bmem in rows:
            if not base:
                print(f"| {what} | | | | | | |")
                continue
            print(f"| {what} | {t:.2f} s | {mem:.0f} MB | {base} | {bt:.2f} s | {bmem:.0f} MB | "
                  f"{t / bt:.1f}x |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
