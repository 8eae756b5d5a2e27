"""Import speed: ``localfirst import llm`` on 20,000 llm turns (~50 MB), both schemas.

Run: ``.venv/bin/python -m bench.importer [--turns N]``. Builds llm-style
databases with SQL (no llm calls), then times a first import, a re-import with
nothing new, and, as the baseline in the same run, a plain SQLite
``INSERT ... SELECT`` copy of the same rows between two files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from localfirst.exporters import export
from localfirst.importers import import_llm
from localfirst.store import Store

PER_THREAD = 5
WORDS = ("the quick brown fox jumps over a lazy dog while seven wizards quietly judge "
         "boxing matches near the old stone bridge under pale winter light").split()


def _text(rng: random.Random, chars: int) -> str:
    out: list[str] = []
    size = 0
    while size < chars:
        w = rng.choice(WORDS)
        out.append(w)
        size += len(w) + 1
    return " ".join(out)


def _ulid(ms: int, n: int) -> str:
    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
    value = (ms << 80) | n
    return "".join(alphabet[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def _when(i: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1_700_000_000 + i * 60)) + ".123456+00:00"


def make_legacy(path: Path, turns: int) -> None:
    rng = random.Random(1)
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE _llm_migrations (name TEXT PRIMARY KEY, applied_at TEXT);
        CREATE TABLE conversations (id TEXT PRIMARY KEY, name TEXT, model TEXT);
        CREATE TABLE responses (id TEXT PRIMARY KEY, model TEXT, prompt TEXT, system TEXT, prompt_json TEXT,
          options_json TEXT, response TEXT, response_json TEXT, conversation_id TEXT, duration_ms INTEGER,
          datetime_utc TEXT, input_tokens INTEGER, output_tokens INTEGER, token_details TEXT, schema_id TEXT,
          resolved_model TEXT);
        CREATE TABLE tool_calls (id INTEGER PRIMARY KEY, response_id TEXT, tool_id INTEGER, name TEXT,
          arguments TEXT, tool_call_id TEXT);
    """)
    convs, rows, calls = [], [], []
    for i in range(turns):
        cid = _ulid(1_700_000_000_000 + (i // PER_THREAD) * 1000, 1)
        if i % PER_THREAD == 0:
            convs.append((cid, _text(rng, 30), "gpt-4o"))
        rid = _ulid(1_700_000_000_000 + i, 2)
        response = _text(rng, 1000)
        rows.append((rid, "gpt-4o", _text(rng, 250), "be brief" if i % PER_THREAD == 0 else None, None,
                     json.dumps({"temperature": 0.5}), response,
                     json.dumps({"id": f"chatcmpl-{i}", "usage": {"prompt_tokens": 10}, "content": response[:200]}),
                     cid, 900, _when(i), 100, 400, json.dumps({"cached_tokens": 3}), None, "gpt-4o-2024-08-06"))
        if i % 10 == 0:
            calls.append((rid, 1, "search", json.dumps({"q": _text(rng, 40)}), f"call_{i}"))
    conn.executemany("INSERT INTO conversations VALUES (?, ?, ?)", convs)
    conn.executemany(f"INSERT INTO responses VALUES ({', '.join('?' * 16)})", rows)
    conn.executemany("INSERT INTO tool_calls (response_id, tool_id, name, arguments, tool_call_id) "
                     "VALUES (?, ?, ?, ?, ?)", calls)
    conn.commit()
    conn.close()


def make_current(path: Path, turns: int) -> None:
    rng = random.Random(2)
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE _llm_migrations (name TEXT PRIMARY KEY, applied_at TEXT);
        CREATE TABLE messages (hash TEXT PRIMARY KEY, parent_hash TEXT, role TEXT, provider_metadata TEXT);
        CREATE TABLE parts (id INTEGER PRIMARY KEY, message_hash TEXT, position INTEGER, type TEXT,
          tool_name TEXT, text TEXT, payload TEXT);
        CREATE UNIQUE INDEX idx_parts_message_hash_position ON parts (message_hash, position);
        CREATE TABLE threads (id TEXT PRIMARY KEY, name TEXT, tip_message_hash TEXT, forked_from TEXT,
          datetime_utc TEXT);
        CREATE TABLE turns (id TEXT PRIMARY KEY, thread_id TEXT, parent_message_hash TEXT, tip_message_hash TEXT,
          model TEXT, resolved_model TEXT, options_json TEXT, schema_id TEXT, input_tokens INTEGER,
          output_tokens INTEGER, token_details TEXT, duration_ms INTEGER, datetime_utc TEXT, response_json TEXT);
    """)
    messages, parts, threads, turn_rows = [], [], [], []
    tip = None
    for i in range(turns):
        tid = _ulid(1_700_000_000_000 + (i // PER_THREAD) * 1000, 1)
        if i % PER_THREAD == 0:
            tip = None
            threads.append([tid, _text(rng, 30), None, None, _when(i)])
            system = hashlib.blake2b(f"s{i}".encode(), digest_size=16).hexdigest()
            messages.append(("b2:" + system, None, "system"))
            parts.append(("b2:" + system, 0, "text", None, "be brief", None))
            tip = "b2:" + system
        user = "b2:" + hashlib.blake2b(f"u{i}".encode(), digest_size=16).hexdigest()
        reply = "b2:" + hashlib.blake2b(f"a{i}".encode(), digest_size=16).hexdigest()
        messages += [(user, tip, "user"), (reply, user, "assistant")]
        response = _text(rng, 1000)
        parts += [(user, 0, "text", None, _text(rng, 250), None), (reply, 0, "text", None, response, None)]
        if i % 10 == 0:
            parts.append((reply, 1, "tool_call", "search", None,
                          json.dumps({"name": "search", "arguments": {"q": "x"}, "tool_call_id": f"call_{i}"})))
        turn_rows.append((_ulid(1_700_000_000_000 + i, 2), tid, user, reply, "gpt-4o", "gpt-4o-2024-08-06",
                          json.dumps({"temperature": 0.5}), None, 100, 400, json.dumps({"cached_tokens": 3}), 900,
                          _when(i), json.dumps({"id": f"chatcmpl-{i}", "content": response[:200]})))
        tip = reply
        threads[-1][2] = tip
    conn.executemany("INSERT INTO messages VALUES (?, ?, ?, NULL)", messages)
    conn.executemany("INSERT INTO parts (message_hash, position, type, tool_name, text, payload) "
                     "VALUES (?, ?, ?, ?, ?, ?)", parts)
    conn.executemany("INSERT INTO threads VALUES (?, ?, ?, ?, ?)", threads)
    conn.executemany(f"INSERT INTO turns VALUES ({', '.join('?' * 14)})", turn_rows)
    conn.commit()
    conn.close()


def baseline_copy(source: Path, target: Path, table: str) -> None:
    """The floor: SQLite copying the same rows from one file to another, no Python per row."""
    conn = sqlite3.connect(target)
    conn.execute("ATTACH DATABASE ? AS src", [str(source)])
    conn.execute(f"CREATE TABLE copy AS SELECT * FROM src.{table} WHERE 0")
    conn.execute(f"INSERT INTO copy SELECT * FROM src.{table}")
    if table == "turns":
        conn.execute("CREATE TABLE copy_parts AS SELECT * FROM src.parts")
    conn.commit()
    conn.close()


_COPY_INTO_STORE = {
    "responses": (
        "INSERT INTO conversations (id, name, model, created_utc) "
        "SELECT id, name, model, '2023-11-14T22:13:20.000000Z' FROM src.conversations",
        "INSERT INTO responses (id, conversation_id, model, resolved_model, prompt, system, options_json, response, "
        "response_json, input_tokens, output_tokens, token_details, duration_ms, datetime_utc) "
        "SELECT id, conversation_id, model, resolved_model, prompt, system, options_json, response, response_json, "
        "input_tokens, output_tokens, token_details, duration_ms, datetime_utc FROM src.responses",
    ),
    "turns": (
        "INSERT INTO conversations (id, name, model, created_utc) "
        "SELECT id, name, NULL, '2023-11-14T22:13:20.000000Z' FROM src.threads",
        "INSERT INTO responses (id, conversation_id, model, resolved_model, prompt, options_json, response, "
        "response_json, input_tokens, output_tokens, token_details, duration_ms, datetime_utc) "
        "SELECT t.id, t.thread_id, t.model, t.resolved_model, u.text, t.options_json, a.text, t.response_json, "
        "t.input_tokens, t.output_tokens, t.token_details, t.duration_ms, t.datetime_utc FROM src.turns t "
        "JOIN src.parts u ON u.message_hash = t.parent_message_hash AND u.position = 0 "
        "JOIN src.parts a ON a.message_hash = t.tip_message_hash AND a.position = 0",
    ),
}


def copy_into_store(source: Path, target: Path, table: str) -> None:
    """The same rows into a localfirst schema (indexes, full-text triggers) by SQL alone."""
    store = Store.open(target)
    conn = store.conn
    conn.execute("ATTACH DATABASE ? AS src", [str(source)])
    with store.write():
        for sql in _COPY_INTO_STORE[table]:
            conn.execute(sql)
    conn.execute("DETACH DATABASE src")
    store.close()


def _exports(store: Store, folder: Path) -> dict[str, float]:
    out = {"read": timed(lambda: store.list_responses(count=0))}
    for fmt, name in (("jsonl", "all.jsonl"), ("markdown", "all.md"), ("llm", "for-llm.db")):
        out[fmt] = timed(lambda f, n: export(store, f, output=folder / n), fmt, name)
    return out


def timed(fn: Callable[..., object], *args: object) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=20_000)
    args = parser.parse_args(argv)
    rows = []
    exports: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for label, make, table in (("llm <= 0.31 (responses)", make_legacy, "responses"),
                                   ("llm >= 0.32 (turns)", make_current, "turns")):
            source = folder / f"{table}.db"
            make(source, args.turns)
            size = os.path.getsize(source) / 1e6
            base = timed(baseline_copy, source, folder / f"{table}-copy.db", table)
            into = timed(copy_into_store, source, folder / f"{table}-sql.db", table)
            store = Store.open(folder / f"{table}-lf.db")
            first = timed(import_llm, store, source)
            again = timed(import_llm, store, source)
            imported = store.conn.execute("SELECT count(*) FROM responses").fetchone()[0]
            if table == "turns":
                exports = _exports(store, folder)
            store.close()
            assert imported == args.turns, imported
            rows.append((label, size, base, into, first, again))
    header = ("llm database", "MB", "plain copy", "SQL into store", "import", "vs copy", "vs SQL", "re-import", "goal")
    table = [header] + [
        (label, f"{size:.1f}", f"{base:.2f} s", f"{into:.2f} s", f"{first:.2f} s", f"{first / base:.1f}x",
         f"{first / into:.1f}x", f"{again:.3f} s", "ok" if first <= 3 and again <= 0.5 else "MISSED")
        for label, size, base, into, first, again in rows
    ]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    print(f"\n### Import from llm ({args.turns} turns)\n")
    for i, r in enumerate(table):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
        if i == 0:
            print("| " + " | ".join("-" * w for w in widths) + " |")
    print("\nplain copy: INSERT ... SELECT of the same rows between two SQLite files, no indexes.")
    print("SQL into store: the same columns into a localfirst database (its indexes and full-text")
    print("triggers) by INSERT ... SELECT, without attachments, parts or checks.")
    print("Goal: import <= 3 s; re-import with nothing new <= 0.5 s.")
    print(f"\n### Export ({args.turns} responses)\n")
    print("| format | time | vs reading them |")
    print("| -------- | ------ | --------------- |")
    read = exports.pop("read")
    for fmt, seconds in exports.items():
        print(f"| {fmt:8} | {seconds:.2f} s | {seconds / read:.1f}x |")
    print(f"\nreading them: Store.list_responses of every response, {read:.2f} s, the baseline.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
