"""`logs list --json` carries every key of `llm logs list --json`, with the same values for llm's rows."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

LLM = Path(sys.executable).parent / "llm"
# Keys whose values differ by design; docs/llm.md says how.
DIFFERENT = {"datetime_utc", "attachments", "prompt_fragments", "system_fragments"}


@pytest.fixture
def llm_rows(tmp_path):
    """Rows llm itself logged (with a fragment, a system fragment and an attachment) and its JSON of them."""
    if not LLM.exists():
        pytest.skip("llm is not installed beside the tests")
    env = {**os.environ, "LLM_USER_PATH": str(tmp_path / "llm")}
    (tmp_path / "llm").mkdir()
    frag = tmp_path / "frag.txt"
    frag.write_text("fragment text\n")
    image = tmp_path / "a.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n0000")

    def llm(*args: str, input: str | None = None) -> str:
        proc = subprocess.run([str(LLM), *args], capture_output=True, text=True, env=env, input=input, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    llm("-m", "echo", "-f", str(frag), "--sf", str(frag), "-s", "be brief", "-a", str(image),
        "-o", "example_bool", "1", "hello", input="")
    llm("-m", "echo", "-c", "again", input="")
    return tmp_path / "llm" / "logs.db", json.loads(llm("logs", "list", "--json", "-n", "0"))


def test_every_llm_key_is_there_with_llms_value(run, llm_rows):
    db, theirs = llm_rows
    assert run("import", "llm", str(db)).code == 0
    ours = json.loads(run("logs", "list", "--json", "-n", "0").out)
    assert [o["id"] for o in ours] == [t["id"] for t in theirs]
    for mine, their in zip(ours, theirs, strict=True):
        assert set(their) <= set(mine), set(their) - set(mine)
        for key in their:
            if key not in DIFFERENT:
                assert mine[key] == their[key], key
        assert (dt.datetime.fromisoformat(mine["datetime_utc"])
                == dt.datetime.fromisoformat(their["datetime_utc"]))
        for kind in ("prompt_fragments", "system_fragments"):
            assert [{k: f[k] for k in ("hash", "content", "aliases")} for f in mine[kind]] == their[kind]
        assert [{k: a[k] for k in ("id", "type", "path", "url")} for a in mine["attachments"]] == \
               [{k: a[k] for k in ("id", "type", "path", "url")} for a in their["attachments"]]
        assert {"parts", "extras", "simulated", "template"} <= set(mine)


def test_fragment_content_that_cannot_be_proved_is_null():
    from localfirst.records import Response

    r = Response(model="m", prompt="changed\nprompt", extras={"llm:fragments": [{"hash": "0" * 64, "source": "x"}]})
    assert r.to_json()["prompt_fragments"] == [{"hash": "0" * 64, "content": None, "aliases": [], "source": "x"}]
    assert Response(model="m", extras={"llm:fragments": "not a list"}).to_json()["prompt_fragments"] == []


def test_tool_calls_and_results_in_llms_shape(run):
    doc = {"model": "m", "prompt": "weather?", "parts": [
        {"type": "tool_call", "tool_call_id": "t1", "name": "weather", "arguments": {"city": "Oslo"}},
        {"type": "tool_result", "tool_call_id": "t1", "name": "weather", "output": "cold", "error": None},
    ], "extras": {"llm:tools": ["weather"]}}
    assert run("log", "--json", input=json.dumps(doc)).code == 0
    got = json.loads(run("logs", "--json").out)[0]
    assert got["tool_calls"] == [{"id": None, "tool_id": None, "name": "weather", "arguments": {"city": "Oslo"},
                                  "tool_call_id": "t1", "server_executed": False}]
    [result] = got["tool_results"]
    assert (result["name"], result["output"], result["tool_call_id"], result["exception"]) == \
           ("weather", "cold", "t1", None)
    assert [t["name"] for t in got["tools"]] == ["weather"]


def test_template_key_names_the_template_run(run):
    assert run("templates", "add", "greet", "--prompt", "Say hi to $input").code == 0
    assert run("-t", "greet", "Ada").code == 0
    template = json.loads(run("logs", "--json").out)[0]["template"]
    assert template["name"] == "greet" and template["version_id"] and template["team"] is None
