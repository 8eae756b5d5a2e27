"""Importing a database that llm 0.31.1 itself wrote (the older schema).

`make test` installs llm 0.31.1 and llm-echo 0.3 into a venv of their own and
names its `llm` in LOCALFIRST_TEST_LLM031; without it these tests are skipped.
"""

from __future__ import annotations

import base64
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from localfirst.importers import import_llm
from localfirst.store import Store

LLM031 = os.environ.get("LOCALFIRST_TEST_LLM031", "")
pytestmark = pytest.mark.skipif(
    not (LLM031 and Path(LLM031).exists()),
    reason="llm 0.31.1 is not installed: `make test` installs it into .venv-llm031",
)
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
TOOL_PROMPT = '{"prompt": "call a tool", "tool_calls": [{"name": "llm_version", "arguments": {}}]}'


def llm(user_path: Path, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_")}
    env["LLM_USER_PATH"] = str(user_path)
    done = subprocess.run([LLM031, *args], env=env, capture_output=True, text=True, timeout=60, cwd=user_path)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def old_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("llm031")
    (folder / "pixel.png").write_bytes(PNG)
    llm(folder, "-m", "echo", "hello there", "-s", "be brief", "-o", "example_bool", "1")
    llm(folder, "-m", "echo", "-c", "second turn")
    llm(folder, "-m", "echo", TOOL_PROMPT, "-T", "llm_version")
    llm(folder, "-m", "echo", "look at this", "-a", str(folder / "pixel.png"))
    return folder / "logs.db"


def test_the_file_has_the_older_schema(old_db: Path) -> None:
    tables = {r[0] for r in sqlite3.connect(old_db).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"conversations", "responses", "tool_calls", "tool_results", "prompt_attachments"} <= tables
    assert "turns" not in tables


def test_import_of_what_llm_031_wrote(fresh_store: Store, old_db: Path) -> None:
    src = sqlite3.connect(old_db)
    expected = src.execute(
        "SELECT id, conversation_id, prompt, system, response FROM responses ORDER BY id").fetchall()
    report = import_llm(fresh_store, old_db)
    assert report.generations == ["conversations/responses"]
    assert report.imported == len(expected) == 5
    for rid, cid, prompt, system, response in expected:
        got = fresh_store.get_response(rid)
        assert got.conversation_id == cid.lower()
        assert (got.prompt or "") == prompt and (got.system or "") == (system or "")
        assert got.model == "echo"
        assert got.response == response  # echo answers with a JSON dump of what it was sent
    first, second = (fresh_store.get_response(r[0]) for r in expected[:2])
    assert first.conversation_id == second.conversation_id  # -c kept the conversation
    assert first.options == {"example_bool": True}
    assert first.system == "be brief"


def test_tool_calls_results_and_attachments_of_llm_031(fresh_store: Store, old_db: Path) -> None:
    import_llm(fresh_store, old_db)
    parts = [p for r in fresh_store.list_responses(count=0) for p in r.parts]
    calls = [p for p in parts if p.type == "tool_call"]
    results = [p for p in parts if p.type == "tool_result"]
    assert [c.tool_name for c in calls] == ["llm_version"]
    assert [r.tool_name for r in results] == ["llm_version"] and results[0].text == "0.31.1"
    images = [p for p in parts if p.type == "attachment"]
    assert len(images) == 1 and images[0].attachment.mime_type == "image/png"
    assert fresh_store.attachment_content(images[0].attachment.id) == PNG


def test_reimport_changes_nothing(fresh_store: Store, old_db: Path) -> None:
    import_llm(fresh_store, old_db)
    again = import_llm(fresh_store, old_db)
    assert again.imported == 0
    assert fresh_store.conn.execute("SELECT count(*) FROM responses").fetchone()[0] == 5
