"""``localfirst export``: JSON lines, Markdown transcripts and llm's own database."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from llm_dbs import CID, CID2, HAVE_LLM, IMG_ID, NO_LLM, R1, R3, R4, make_legacy_db

from localfirst.importers import import_llm
from localfirst.store import Store


@pytest.fixture
def filled(run, tmp_path: Path) -> Path:
    """The CLI's store, holding the legacy llm fixture."""
    legacy = make_legacy_db(tmp_path / "old.db")
    assert run("import", "llm", str(legacy)).code == 0
    return legacy


def test_jsonl_has_the_shape_of_logs_list_json(run, filled: Path) -> None:
    result = run("export", "--format", "jsonl")
    assert result.code == 0, result.err
    lines = [json.loads(line) for line in result.out.splitlines()]
    listed = json.loads(run("logs", "list", "-n", "0", "--json").out)
    # Beyond that shape, what import jsonl needs: each conversation's row once, attachments' bytes.
    cids = [line["conversation_id"] for line in lines]
    assert [line.pop("conversation", {}).get("id") for line in lines] == [
        c if c not in cids[:i] else None for i, c in enumerate(cids)]
    for line in lines:
        for part in line["parts"]:
            part.get("attachment", {}).pop("content_base64", None)
    assert lines == listed and len(lines) == 4


def test_jsonl_filters_and_file(run, filled: Path, tmp_path: Path) -> None:
    out = tmp_path / "one.jsonl"
    result = run("export", "--cid", CID2, "-o", str(out))
    assert result.code == 0 and result.out == ""
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == [R3, R4]
    since = run("export", "--since", "2025-01-02")
    assert [json.loads(x)["id"] for x in since.out.splitlines()] == [R3, R4]


def test_markdown_transcript(run, filled: Path) -> None:
    result = run("export", "-f", "markdown")
    assert result.code == 0, result.err
    text = result.out
    assert text.index("# legacy chat") < text.index("# tools")
    assert "### System\n\nSYSTEM FRAGMENT\n\nbe brief" in text
    assert "### User\n\nFRAGMENT TEXT\nfirst question" in text
    assert '**Tool call** `clock` (call_1):\n\n```json\n{\n  "tz": "UTC"\n}\n```' in text
    assert "**Tool result** `clock` (call_1):\n\n```\n12:00\n```" in text
    assert "Tokens: 11 input, 22 output" in text


def test_export_path_in_missing_directory(run, filled: Path, tmp_path: Path) -> None:
    for args in (["-o", str(tmp_path / "no" / "x.jsonl")], ["-f", "llm", str(tmp_path / "no" / "x.db")]):
        result = run("export", *args)
        assert result.code != 0 and result.err.startswith("Error: ") and "does not exist" in result.err
        assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert not (tmp_path / "no").exists()


def test_export_llm_refuses_an_existing_file(run, filled: Path, tmp_path: Path) -> None:
    target = tmp_path / "there.db"
    target.write_bytes(b"keep me")
    result = run("export", "-f", "llm", str(target))
    assert result.code != 0 and "already exists" in result.err
    assert target.read_bytes() == b"keep me"


def test_export_llm_needs_a_path_and_a_known_format(run, filled: Path) -> None:
    assert "give its PATH" in run("export", "-f", "llm").err
    assert "--format must be one of" in run("export", "-f", "csv").err


def test_llm_export_imports_back_the_same(run, filled: Path, tmp_path: Path, fresh_store: Store) -> None:
    target = tmp_path / "for-llm.db"
    result = run("export", "-f", "llm", str(target))
    assert result.code == 0 and "Exported 4 responses" in result.err
    report = import_llm(fresh_store, target)
    assert report.generations == ["threads/turns", "conversations/responses"] and report.imported == 4
    original = {r["id"]: r for r in json.loads(run("logs", "list", "-n", "0", "--json").out)}
    for r in fresh_store.list_responses(count=0):
        o = original[r.id]
        assert (r.prompt, r.response, r.conversation_id) == (o["prompt"], o["response"], o["conversation_id"])
        # In llm a system prompt holds for the rest of its thread.
        assert r.system == (o["system"] or ("SYSTEM FRAGMENT\n\nbe brief" if r.conversation_id == CID else None))
        assert (r.options, r.input_tokens, r.output_tokens) == (o["options"], o["input_tokens"], o["output_tokens"])
    back = fresh_store.get_response(R4)
    assert [(p.type, p.tool_call_id) for p in back.parts if p.role == "user"] == [
        ("tool_result", "call_1"), ("attachment", None)]
    assert fresh_store.attachment_content(IMG_ID) is not None


@pytest.mark.skipif(not HAVE_LLM, reason=NO_LLM)
def test_llm_logs_reads_the_export(run, filled: Path, tmp_path: Path) -> None:
    logged = run("log", "--json", input=json.dumps({
        "model": "claude", "prompt": "weather?", "reasoning": "they want the weather",
        "attachments": [{"content_base64": "aGVsbG8=", "mime_type": "text/plain"}],
        "parts": [{"type": "text", "text": "Let me check."},
                  {"type": "tool_call", "tool_call_id": "toolu_1", "name": "weather", "arguments": {"city": "Oslo"}}],
    })).out.strip()
    target = tmp_path / "for-llm.db"
    assert run("export", "-f", "llm", str(target)).code == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_")}
    env["LLM_USER_PATH"] = str(tmp_path / "llm-home")
    done = subprocess.run([sys.executable, "-m", "llm", "logs", "-d", str(target), "-n", "0", "--json"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    rows = {r["id"]: r for r in json.loads(done.stdout)}
    assert len(rows) == 5 and R1 in rows
    mine = rows[logged]
    assert (mine["prompt"], mine["response"], mine["reasoning"]) == ("weather?", "Let me check.",
                                                                     "they want the weather")
    assert [c["tool_call_id"] for c in mine["tool_calls"]] == ["toolu_1"]
    assert [a["type"] for a in mine["attachments"]] == ["text/plain"]
    r1 = rows[R1]
    assert r1["prompt"] == "FRAGMENT TEXT\nfirst question" and r1["system"] == "SYSTEM FRAGMENT\n\nbe brief"
    assert r1["response"] == "first answer" and r1["conversation_id"] == CID
    assert r1["options_json"] == {"temperature": 0.5} and (r1["input_tokens"], r1["output_tokens"]) == (11, 22)
    assert r1["conversation_name"] == "legacy chat"
    assert [(c["name"], c["arguments"], c["tool_call_id"]) for c in rows[R3]["tool_calls"]] == [
        ("clock", {"tz": "UTC"}, "call_1")]
    assert [(t["name"], t["output"]) for t in rows[R4]["tool_results"]] == [("clock", "12:00")]
    assert len(rows[[r for r in rows if rows[r]["prompt"] == "what is this"][0]]["attachments"]) == 2
    # llm re-hashes every stored message from what it reads back: ours must agree.
    verify = subprocess.run([sys.executable, "-c", (
        "import sys, sqlite_utils; from llm.logs import LogStore; "
        "print(len(LogStore(sqlite_utils.Database(sys.argv[1])).verify()))"), str(target)],
        capture_output=True, text=True, env=env, timeout=60)
    assert verify.returncode == 0 and verify.stdout.strip() == "0", verify.stderr + verify.stdout
    text = subprocess.run([sys.executable, "-m", "llm", "logs", "-d", str(target), "-q", "question"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert text.returncode == 0 and "first answer" in text.stdout


@pytest.mark.parametrize(("flush", "bits"), [(1, 1 << 26), (1000, 1 << 26), (1, 8)],
                         ids=["a-flush-per-turn", "one-flush", "a-filter-that-always-says-maybe"])
def test_export_llm_writes_a_shared_message_once(fresh_store: Store, tmp_path: Path, flush: int, bits: int,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # Two conversations opening with the same exchange share its messages in llm's
    # content-addressed store, whether the second comes before or after a flush;
    # the filter of written hashes only decides when the file is asked.
    from localfirst.exporters import llm_db
    from localfirst.records import Part, Response

    monkeypatch.setattr(llm_db, "_FLUSH", flush)
    monkeypatch.setattr(llm_db._Written, "BITS", bits)
    fresh_store.log_many([
        Response(model="m", prompt="hello", response="hi",
                 parts=[Part(type="text", text="hi"), Part(type="tool_call", tool_name="t", arguments={"a": 1})],
                 datetime_utc=f"2026-01-0{day}T00:00:00.000000Z")
        for day in (1, 2)])
    result = llm_db.export_llm(fresh_store, tmp_path / "llm.db")
    assert (result.conversations, result.responses) == (2, 2)
    with sqlite3.connect(tmp_path / "llm.db") as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 2  # one user, one assistant
        assert conn.execute("SELECT count(*) FROM parts").fetchone()[0] == 3
        tips = conn.execute("SELECT DISTINCT tip_message_hash FROM turns").fetchall()
        assert len(tips) == 1 and conn.execute("SELECT count(*) FROM turn_search").fetchone()[0] == 2
    report = import_llm(Store.open(tmp_path / "back.db"), tmp_path / "llm.db")
    assert report.imported == 2 and not report.problems


def test_export_llm_appears_only_when_complete(fresh_store: Store, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # Built under a temporary name and renamed at the end: an interrupted
    # export leaves neither the file nor the temporary one.
    from localfirst.exporters import llm_db
    from localfirst.records import Response

    fresh_store.log_many([Response(model="m", prompt=f"p{i}", response="r") for i in range(3)])
    real = llm_db.LlmWriter.thread
    seen: list[list[str]] = []

    def interrupted(self: llm_db.LlmWriter, responses: list[Response]) -> None:
        seen.append(sorted(p.name for p in tmp_path.iterdir()))
        if len(seen) == 2:
            raise KeyboardInterrupt
        real(self, responses)

    monkeypatch.setattr(llm_db.LlmWriter, "thread", interrupted)
    with pytest.raises(KeyboardInterrupt):
        llm_db.export_llm(fresh_store, tmp_path / "llm.db")
    assert "llm.db" not in seen[0] and any(name.endswith(".partial") for name in seen[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    monkeypatch.undo()
    assert llm_db.export_llm(fresh_store, tmp_path / "llm.db").responses == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["llm.db"]
