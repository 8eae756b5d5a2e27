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


def test_models_lists_llms_models_by_the_name_m_takes(run):
    shown = run("models").out
    lines = [line.split() for line in shown.splitlines()]
    assert ["llm:echo"] in lines and ["echo-needs-key"] in lines  # localfirst's echo keeps the plain name
    assert "llm:echo" not in run("models", "--no-llm").out
