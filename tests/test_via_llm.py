"""-m naming one of llm's models: llm (with llm-echo) runs it, localfirst logs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import assert_one_line_error, db_state

from localfirst.records import Response

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


@pytest.fixture(autouse=True)
def llm_home(tmp_path, monkeypatch):
    """llm reads its keys and plugins' settings from its own directory: a temporary one."""
    monkeypatch.setenv("LLM_USER_PATH", str(tmp_path / "llm"))
    (tmp_path / "llm").mkdir()


def logged(run) -> list[dict]:
    r = run("logs", "list", "-n", "0", "--json")
    assert r.code == 0, r.err
    return json.loads(r.out)


def test_an_llm_model_answers_and_localfirst_logs_it(run):
    r = run("-m", "llm:echo", "-o", "example_bool", "true", "hello llm")
    assert r.code == 0, r.err
    answer = json.loads(r.out)
    assert answer["prompt"] == "hello llm" and answer["options"] == {"example_bool": True}
    [row] = logged(run)
    # localfirst's own echo is called "echo", so llm's is logged as llm:echo.
    assert (row["model"], row["resolved_model"], row["conversation_model"]) == ("llm:echo", "echo", "llm:echo")
    assert row["options_json"] == {"example_bool": True}
    assert row["response"] == r.out.rstrip("\n")
    assert row["input_tokens"] == 2 and row["output_tokens"] > 0


def test_continuing_keeps_the_llm_model_and_sends_the_history(run):
    assert run("-m", "llm:echo", "first question").code == 0
    r = run("-c", "second question")
    assert r.code == 0, r.err
    assert json.loads(r.out)["prompt"] == "second question"
    rows = logged(run)
    assert [x["model"] for x in rows] == ["llm:echo", "llm:echo"]
    assert len({x["conversation_id"] for x in rows}) == 1


def test_history_becomes_llms_messages():
    from llm.parts import AttachmentPart, TextPart

    from localfirst.models.via_llm import history_messages
    from localfirst.records import Attachment, Part

    earlier = [
        Response(model="m", prompt="q1", response="a1", system="sys"),
        Response(model="m", prompt="q2", response="a2", system="sys",
                 parts=[Part(type="attachment", role="user", attachment=Attachment(PNG, "image/png"))]),
    ]
    messages = history_messages(earlier)
    assert [m.role for m in messages] == ["system", "user", "assistant", "user", "assistant"]
    assert [p.text for m in messages for p in m.parts if isinstance(p, TextPart)] == ["sys", "q1", "a1", "q2", "a2"]
    [image] = [p for p in messages[3].parts if isinstance(p, AttachmentPart)]
    assert image.attachment.content == PNG and image.attachment.type == "image/png"


def test_a_key_model_takes_key_and_it_never_reaches_the_log(run):
    assert run("seed").code == 0
    before = db_state()
    r = run("-m", "echo-needs-key", "hi")
    assert_one_line_error(r, "echo-needs-key")
    assert db_state() == before
    secret = "sk-very-secret-key-12345"
    r = run("-m", "echo-needs-key", "--key", secret, "hi")
    assert r.code == 0, r.err
    assert secret not in r.out and "[redacted key]" in r.out  # llm-echo repeats the key it was given
    row = logged(run)[-1]
    assert row["model"] == "echo-needs-key"  # no clash with a localfirst name: logged as is
    assert secret not in "\n".join(db_state())


def test_an_llm_model_with_an_attachment(run, tmp_path):
    image = tmp_path / "dot.png"
    image.write_bytes(PNG)
    r = run("-m", "llm:echo", "-a", str(image), "what is it")
    assert r.code == 0, r.err
    assert json.loads(r.out)["attachments"][0]["type"] == "image/png"
    assert logged(run)[0]["attachments"][0]["content_length"] == len(PNG)


@pytest.mark.parametrize("args,fragment", [
    (["-m", "llm:echo", "-o", "example_bool", "not-a-bool", "x"], "example_bool"),
    (["-m", "llm:no-such-model", "x"], "llm has no model"),
    (["-m", "no-such-model", "x"], "llm's models"),
])
def test_bad_llm_model_input_is_one_line(run, args, fragment):
    assert run("seed").code == 0
    before = db_state()
    assert_one_line_error(run(*args), fragment)
    assert db_state() == before


def test_an_attachment_type_the_model_does_not_take_is_one_line(run, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("plain")
    assert run("seed").code == 0
    before = db_state()
    assert_one_line_error(run("-m", "llm:echo", "-a", str(text), "x"), "text/plain")
    assert db_state() == before


def test_without_llm_installed(run, monkeypatch):
    import localfirst.models.via_llm as via

    monkeypatch.setattr(via, "llm_installed", lambda: False)
    assert_one_line_error(run("-m", "llm:echo", "x"), "llm is not installed")
    r = run("-m", "gpt-nothing", "x")
    assert_one_line_error(r, "unknown model")
    assert "llm" not in r.err
    assert run("-m", "echo", "still works").out == "still works\n"


def _imports_llm(*args: str, home) -> bool:
    code = (f"import sys; from localfirst import cli; code = cli.main({list(args)!r}); "
            "print(code, 'llm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "LOCALFIRST_HOME": str(home)}).stdout.split()
    assert out[-2] == "0", out
    return out[-1] == "True"


def test_llm_is_imported_only_on_the_path_that_runs_its_model(tmp_path):
    assert not _imports_llm("-m", "echo", "hi", home=tmp_path)
    assert not _imports_llm("logs", "list", "-n", "1", home=tmp_path)
    assert _imports_llm("-m", "llm:echo", "hi", home=tmp_path)
    assert not _imports_llm("models", "list", "--json", "--no-llm", home=tmp_path)
    assert _imports_llm("models", "list", "--json", home=tmp_path)


def test_models_lists_llms_models_by_the_name_m_takes(run):
    shown = run("models").out
    lines = [line.split() for line in shown.splitlines()]
    assert ["llm:echo"] in lines and ["echo-needs-key"] in lines  # localfirst's echo keeps the plain name
    assert "llm:echo" not in run("models", "--no-llm").out


# -- --at, models --json, and tool calls in a continued conversation ------------------------


def test_attachment_type_reaches_llms_model(run, tmp_path):
    blob = tmp_path / "photo.bin"
    blob.write_bytes(PNG)
    r = run("-m", "llm:echo", "--at", str(blob), "image/gif", "what is it")
    assert r.code == 0, r.err
    assert [a["type"] for a in json.loads(r.out)["attachments"]] == ["image/gif"]
    before = db_state()
    # llm-echo takes png, jpeg and gif only: llm's refusal is one line, nothing logged.
    assert_one_line_error(run("-m", "llm:echo", "--at", str(blob), "image/tiff", "x"), "image/tiff")
    assert db_state() == before


def test_models_json_lists_llms_models_with_their_source(run):
    assert run("models", "add", "local", "--base-url", "http://127.0.0.1:9/v1", "--model", "llama").code == 0
    listed = json.loads(run("models", "list", "--json").out)
    assert listed[0]["name"] == "local" and listed[0]["source"] == "localfirst"
    from_llm = {m["name"]: m for m in listed if m["source"] == "llm"}
    assert from_llm["llm:echo"] == {"name": "llm:echo", "model": "echo", "aliases": [], "source": "llm"}
    assert from_llm["echo-needs-key"]["model"] == "echo-needs-key"
    assert json.loads(run("models", "--json").out) == listed  # bare `models` is `models list`
    assert [m["source"] for m in json.loads(run("models", "list", "--json", "--no-llm").out)] == ["localfirst"]


def test_models_json_without_llm_installed(run, monkeypatch):
    import localfirst.models.via_llm as via

    monkeypatch.setattr(via, "llm_installed", lambda: False)
    assert json.loads(run("models", "list", "--json").out) == []


class Recorder:
    """An llm model, registered through llm's own plugin hook, that keeps the messages llm hands it."""

    seen: list[list[dict]] = []

    @staticmethod
    def model() -> object:
        import llm

        class RecorderModel(llm.Model):
            model_id = "recorder"
            supports_tools = True
            can_stream = True

            def execute(self, prompt, stream, response, conversation=None):  # type: ignore[no-untyped-def]
                Recorder.seen.append([m.to_dict() for m in prompt.messages])
                yield "recorded"

        return RecorderModel()


@pytest.fixture
def recorder():
    import llm
    from llm.plugins import pm

    class Plugin:
        @llm.hookimpl
        def register_models(self, register):  # type: ignore[no-untyped-def]
            register(Recorder.model())

    Recorder.seen = []
    pm.register(Plugin(), name="localfirst-test-recorder")
    try:
        yield Recorder.seen
    finally:
        pm.unregister(name="localfirst-test-recorder")


def test_continuing_sends_the_tool_calls_and_results_llm_logged(run, tmp_path, recorder):
    """llm runs a tool; the conversation, imported, is continued here through another of llm's models."""
    import sqlite_utils
    from llm.cli import LogStore

    env = {**os.environ, "LLM_USER_PATH": str(tmp_path / "llm")}
    asked = json.dumps({"tool_calls": [{"name": "llm_version"}], "prompt": "which version?"})
    done = subprocess.run([sys.executable, "-m", "llm", "-m", "echo", "-T", "llm_version", asked],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert run("import", "llm", str(tmp_path / "llm" / "logs.db")).code == 0
    rows = logged(run)
    assert [p["type"] for p in rows[0]["parts"]] == ["text", "tool_call"]
    assert [p["type"] for p in rows[1]["parts"]] == ["tool_result"]
    cid = rows[0]["conversation_id"]
    # What llm itself loads from its own database to continue this conversation (`llm -c`).
    llms = [m.to_dict() for m in LogStore(sqlite_utils.Database(tmp_path / "llm" / "logs.db")).thread_messages(cid)]
    assert [m["role"] for m in llms] == ["user", "assistant", "tool", "assistant"]

    r = run("-m", "recorder", "--cid", cid, "and which Python?")
    assert r.code == 0, r.err
    [sent] = recorder
    assert sent == [*llms, {"role": "user", "parts": [{"type": "text", "text": "and which Python?"}]}]
    assert sent[1]["parts"][1]["name"] == "llm_version" and sent[2]["parts"][0]["output"] == "0.36"
    assert logged(run)[-1]["conversation_id"] == cid


def test_tool_parts_logged_by_hand_are_sent_in_order(run, recorder):
    call = {"type": "tool_call", "role": "assistant", "tool_call_id": "call_1", "name": "weather",
            "arguments": {"city": "Paris"}}
    result = {"type": "tool_result", "role": "user", "tool_call_id": "call_1", "name": "weather",
              "output": "sunny", "error": None}
    assert run("log", "--json", input=json.dumps({"model": "m", "system": "terse", "prompt": "Paris weather?",
                                                  "parts": [call]})).code == 0
    assert run("log", "--json", "-c", input=json.dumps({"model": "m", "response": "Sunny.",
                                                        "parts": [result]})).code == 0
    assert run("-m", "recorder", "-c", "tomorrow?").code == 0
    [sent] = recorder
    assert sent == [
        {"role": "system", "parts": [{"type": "text", "text": "terse"}]},
        {"role": "user", "parts": [{"type": "text", "text": "Paris weather?"}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "name": "weather", "arguments": {"city": "Paris"},
                                         "tool_call_id": "call_1"}]},
        {"role": "tool", "parts": [{"type": "tool_result", "name": "weather", "output": "sunny",
                                    "tool_call_id": "call_1"}]},
        {"role": "assistant", "parts": [{"type": "text", "text": "Sunny."}]},
        {"role": "user", "parts": [{"type": "text", "text": "tomorrow?"}]},
    ]


@pytest.mark.parametrize("stored,sent", [
    ({"city": "Paris"}, {"city": "Paris"}),
    ('{"city": "Paris"}', {"city": "Paris"}),
    (None, {}),
    ([1, 2], {"value": [1, 2]}),
    ("not json", {"value": "not json"}),
])
def test_tool_call_arguments_become_an_object(stored, sent):
    from llm.parts import ToolCallPart

    from localfirst.models.via_llm import history_messages
    from localfirst.records import Part

    turn = Response(model="m", prompt="q", parts=[Part(type="tool_call", tool_name="t", arguments=stored)])
    [_user, reply] = history_messages([turn])
    [call] = reply.parts
    assert isinstance(call, ToolCallPart) and call.arguments == sent


def test_what_llm_kept_beside_a_part_is_given_back():
    from llm.parts import ReasoningPart, ToolCallPart

    from localfirst.models.via_llm import history_messages
    from localfirst.records import Part

    signed = {"anthropic": {"signature": "sig-123"}}
    turn = Response(model="m", prompt="q", response="a", parts=[
        Part(type="reasoning", text="", extras={"llm:redacted": True, "llm:provider_metadata": signed}),
        Part(type="text", text="a"),
        Part(type="tool_call", tool_name="search", arguments={}, extras={"llm:server_executed": True}),
    ])
    [_user, reply] = history_messages([turn])
    thought, text, call = reply.parts
    assert isinstance(thought, ReasoningPart) and thought.redacted and thought.provider_metadata == signed
    assert text.text == "a" and text.provider_metadata is None
    assert isinstance(call, ToolCallPart) and call.server_executed
    # None of it changes how a turn is hashed for llm's database.
    from localfirst.exporters.llm_db import message_hash
    from localfirst.exporters.llm_turns import turn_messages

    bare = Response(model="m", prompt="q", response="a", parts=[
        Part(type="reasoning", text=""), Part(type="text", text="a"), Part(type="tool_call", tool_name="search",
                                                                          arguments={})])
    assert message_hash(turn_messages(turn, system=None)[1], None) == message_hash(
        turn_messages(bare, system=None)[1], None)
