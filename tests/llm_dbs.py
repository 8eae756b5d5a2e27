"""llm databases for the import and export tests, built at test time.

The current schema is written by llm itself (a test dependency), driven as a
subprocess with the offline ``echo`` model. The older schema (llm <= 0.31) is
written from SQL here, laid out as llm 0.31.1 left it, with one of everything
(fragments, tool instances, URL attachments) that the echo model cannot make;
tests/test_importers_llm031.py imports a file that llm 0.31.1 really wrote.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from helpers import assert_one_line_error

from localfirst.exporters.llm_schema import LLM_MIGRATIONS

PNG = b"\x89PNG\r\n\x1a\nnot really a picture"
URL = "https://example.com/x.png"

HAVE_LLM = importlib.util.find_spec("llm") is not None and importlib.util.find_spec("llm_echo") is not None
NO_LLM = "llm and llm-echo are not installed (pip install -e '.[test]')"


def run_llm(user_path: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_")}
    env["LLM_USER_PATH"] = str(user_path)
    done = subprocess.run([sys.executable, "-m", "llm", *args], capture_output=True, text=True, env=env,
                          timeout=60, cwd=user_path)
    assert done.returncode == 0, done.stderr
    return done.stdout


def make_current_db(folder: Path) -> Path:
    """A logs.db written by llm >= 0.32: every feature the importer maps."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "picture.png").write_bytes(PNG)
    (folder / "frag.txt").write_text("fragment content here")
    run_llm(folder, "-m", "echo", "hi there", "-s", "be brief", "-o", "example_bool", "1")
    run_llm(folder, "-m", "echo", "-c", "second turn")
    run_llm(folder, "-m", "echo", "-o", "thinking", "1", "think about it")
    run_llm(folder, "-m", "echo", "-a", str(folder / "picture.png"), "with attachment")
    run_llm(folder, "-m", "echo", "--at", URL, "image/png", "with url")
    run_llm(folder, "-m", "echo", "-f", str(folder / "frag.txt"), "--sf", str(folder / "frag.txt"), "with fragment")
    run_llm(folder, "-m", "echo", "-T", "llm_version",
            json.dumps({"prompt": "call tools", "tool_calls": [{"name": "llm_version", "arguments": {}}]}))
    return folder / "logs.db"


LEGACY_SCHEMA = """
CREATE TABLE _llm_migrations (name TEXT PRIMARY KEY, applied_at TEXT);
CREATE TABLE conversations (id TEXT PRIMARY KEY, name TEXT, model TEXT);
CREATE TABLE attachments (id TEXT PRIMARY KEY, type TEXT, path TEXT, url TEXT, content BLOB);
CREATE TABLE prompt_attachments (response_id TEXT, attachment_id TEXT, "order" INTEGER,
  PRIMARY KEY (response_id, attachment_id));
CREATE TABLE schemas (id TEXT PRIMARY KEY, content TEXT);
CREATE TABLE responses (id TEXT PRIMARY KEY, model TEXT, prompt TEXT, system TEXT, prompt_json TEXT,
  options_json TEXT, response TEXT, response_json TEXT, conversation_id TEXT, duration_ms INTEGER,
  datetime_utc TEXT, input_tokens INTEGER, output_tokens INTEGER, token_details TEXT, schema_id TEXT,
  resolved_model TEXT);
CREATE VIRTUAL TABLE responses_fts USING FTS5 (prompt, response, content="responses");
CREATE TABLE fragments (id INTEGER PRIMARY KEY, hash TEXT, content TEXT, datetime_utc TEXT, source TEXT);
CREATE UNIQUE INDEX idx_fragments_hash ON fragments (hash);
CREATE TABLE fragment_aliases (alias TEXT PRIMARY KEY, fragment_id INTEGER);
CREATE TABLE prompt_fragments (response_id TEXT, fragment_id INTEGER, "order" INTEGER,
  PRIMARY KEY (response_id, fragment_id, "order"));
CREATE TABLE system_fragments (response_id TEXT, fragment_id INTEGER, "order" INTEGER,
  PRIMARY KEY (response_id, fragment_id, "order"));
CREATE TABLE tools (id INTEGER PRIMARY KEY, hash TEXT, name TEXT, description TEXT, input_schema TEXT,
  plugin TEXT);
CREATE TABLE tool_responses (tool_id INTEGER, response_id TEXT, PRIMARY KEY (tool_id, response_id));
CREATE TABLE tool_calls (id INTEGER PRIMARY KEY, response_id TEXT, tool_id INTEGER, name TEXT,
  arguments TEXT, tool_call_id TEXT);
CREATE TABLE tool_instances (id INTEGER PRIMARY KEY, plugin TEXT, name TEXT, arguments TEXT);
CREATE TABLE tool_results (id INTEGER PRIMARY KEY, response_id TEXT, tool_id INTEGER, name TEXT,
  output TEXT, tool_call_id TEXT, instance_id INTEGER, exception TEXT);
CREATE TABLE tool_results_attachments (tool_result_id INTEGER, attachment_id TEXT, "order" INTEGER,
  PRIMARY KEY (tool_result_id, attachment_id));
"""

# Ids as llm 0.31 wrote them: lower-case ULIDs.
CID = "01jq0000000000000000000c01"
CID2 = "01jq0000000000000000000c02"
R1, R2, R3, R4 = (f"01jq00000000000000000000r{i}".replace("r", "a") for i in range(1, 5))
IMG_ID = hashlib.sha256(PNG).hexdigest()
URL_LLM_ID = hashlib.sha256(json.dumps({"url": URL}).encode()).hexdigest()


def make_legacy_db(path: Path) -> Path:
    """A logs.db in the schema llm 0.31.1 wrote, with one of everything."""
    conn = sqlite3.connect(path)
    conn.executescript(LEGACY_SCHEMA)
    # The migrations llm 0.31.1 had applied, so that a newer llm upgrades the file.
    old = LLM_MIGRATIONS[:LLM_MIGRATIONS.index("m022_response_reasoning")]
    conn.executemany("INSERT INTO _llm_migrations VALUES (?, '2025-01-01')", [(n,) for n in old])
    conn.executemany("INSERT INTO conversations VALUES (?, ?, ?)",
                     [(CID, "legacy chat", "gpt-4o"), (CID2, "tools", "gpt-4o")])
    conn.execute("INSERT INTO schemas VALUES ('s1', ?)", [json.dumps({"type": "object"})])
    row = ("INSERT INTO responses (id, model, prompt, system, prompt_json, options_json, response, response_json,"
           " conversation_id, duration_ms, datetime_utc, input_tokens, output_tokens, token_details, schema_id,"
           " resolved_model) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
    conn.executemany(row, [
        (R1, "gpt-4o", "first question", "be brief", json.dumps({"messages": []}), json.dumps({"temperature": 0.5}),
         "first answer", json.dumps({"id": "chatcmpl-1"}), CID, 120, "2025-01-01T10:00:00.000001+00:00",
         11, 22, json.dumps({"cached_tokens": 3}), "s1", "gpt-4o-2024-08-06"),
        (R2, "gpt-4o", "what is this", None, None, "{}", "a picture", None, CID, 80,
         "2025-01-01T10:01:00+00:00", 5, 6, None, None, None),
        (R3, "gpt-4o", "what time is it", None, None, "{}", "", None, CID2, 10,
         "2025-01-02T09:00:00+00:00", 7, 8, None, None, None),
        (R4, "gpt-4o", None, None, None, "{}", "it is noon", None, CID2, 10,
         "2025-01-02T09:00:01+00:00", 9, 10, None, None, None),
    ])
    conn.execute("INSERT INTO fragments VALUES (1, ?, 'FRAGMENT TEXT', '2025-01-01', 'notes.txt')",
                 [hashlib.sha256(b"FRAGMENT TEXT").hexdigest()])
    conn.execute("INSERT INTO fragments VALUES (2, ?, 'SYSTEM FRAGMENT', '2025-01-01', 'sys.txt')",
                 [hashlib.sha256(b"SYSTEM FRAGMENT").hexdigest()])
    conn.execute("INSERT INTO prompt_fragments VALUES (?, 1, 0)", [R1])
    conn.execute("INSERT INTO system_fragments VALUES (?, 2, 0)", [R1])
    conn.execute("INSERT INTO attachments VALUES (?, 'image/png', NULL, NULL, ?)", [IMG_ID, PNG])
    conn.execute("INSERT INTO attachments VALUES (?, 'image/png', NULL, ?, NULL)", [URL_LLM_ID, URL])
    conn.execute("INSERT INTO prompt_attachments VALUES (?, ?, 0)", [R2, IMG_ID])
    conn.execute("INSERT INTO prompt_attachments VALUES (?, ?, 1)", [R2, URL_LLM_ID])
    conn.execute("INSERT INTO tools VALUES (7, 'h', 'clock', 'What time it is', '{}', 'p')")
    conn.executemany("INSERT INTO tool_responses VALUES (7, ?)", [(R3,), (R4,)])
    conn.execute("INSERT INTO tool_calls VALUES (41, ?, 7, 'clock', '{\"tz\": \"UTC\"}', 'call_1')", [R3])
    conn.execute("INSERT INTO tool_instances VALUES (3, 'p', 'Clock', '{\"fmt\": 24}')")
    conn.execute("INSERT INTO tool_results VALUES (42, ?, 7, 'clock', '12:00', 'call_1', 3, NULL)", [R4])
    conn.execute("INSERT INTO tool_results_attachments VALUES (42, ?, 0)", [IMG_ID])
    conn.commit()
    conn.close()
    return path


def assert_refused(result: Any, *, says: str) -> None:
    assert_one_line_error(result, says)


def store_counts(run: Any) -> str:
    status = run("logs", "status").out
    return "\n".join(line for line in status.splitlines() if not line.startswith("File size"))
