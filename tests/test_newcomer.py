"""What a newcomer meets: id prefixes, help text, plurals, exit codes, completion, llm's templates."""

from __future__ import annotations

import json

import pytest
from conftest import run_subprocess
from helpers import assert_one_line_error, db_state

from localfirst import cli


def ids_of(run) -> list[dict]:
    return json.loads(run("logs", "list", "-n", "0", "--json").out)


# -- ids -----------------------------------------------------------------------------


def test_logs_show_and_cid_take_a_unique_prefix(run):
    assert run("first").code == 0
    row = ids_of(run)[0]
    shown = json.loads(run("logs", "show", row["id"][:12].upper(), "--json").out)
    assert shown["id"] == row["id"]
    assert run("--cid", row["conversation_id"][:12], "second").code == 0
    assert run("log", "--cid", row["conversation_id"][:9], "-r", "third").code == 0
    assert [r["conversation_id"] for r in ids_of(run)] == [row["conversation_id"]] * 3
    listed = json.loads(run("logs", "--cid", row["conversation_id"][:10], "--json").out)
    assert len(listed) == 3


def test_id_prefix_errors(run):
    twins = ["01m7xhnvbscbetp2ef6kz6yg5v", "01m7xhnvbscbetp2ef6kz6yg5w"]
    for rid in twins:
        assert run("log", "--json", input=json.dumps({"id": rid, "model": "m", "prompt": "p"})).code == 0
    before = db_state()
    assert_one_line_error(run("logs", "show", twins[0][:20]), "more than one response id")
    assert json.loads(run("logs", "show", twins[1][:26], "--json").out)["id"] == twins[1]
    assert_one_line_error(run("logs", "show", twins[0][:7]), "first 8 or more characters")
    assert_one_line_error(run("logs", "show", "zzzzzzzzzz"), "no response with id")
    r = run("logs", "show", "not an id!")
    assert_one_line_error(r, "not a valid response id")
    assert r.code == 2
    assert db_state() == before


def test_a_conversation_id_where_a_response_id_belongs_says_so(run):
    assert run("hello").code == 0
    row = ids_of(run)[0]
    r = run("logs", "show", row["conversation_id"])
    assert_one_line_error(r, "is a conversation id, not a response id", "--cid")
    assert r.code == 3
    assert_one_line_error(run("logs", "rm", row["conversation_id"], "--yes"), "is a conversation id")
    r = run("--cid", row["id"], "more")
    assert_one_line_error(r, "is a response id, not a conversation id", row["conversation_id"])
    assert len(ids_of(run)) == 1


# -- help ------------------------------------------------------------------------------


def all_help() -> str:
    root = cli._command([])
    out = [root.get_help(root.make_context("localfirst", ["--help"], resilient_parsing=True))]
    stack = [("localfirst", root)]
    while stack:
        path, command = stack.pop()
        for name, sub in getattr(command, "commands", {}).items():
            ctx = sub.make_context(f"{path} {name}", [], resilient_parsing=True)
            out.append(sub.get_help(ctx))
            stack.append((f"{path} {name}", sub))
    return "\n".join(out)


def test_help_has_no_huge_numbers_markup_or_braced_metavars():
    text = all_help()
    assert "4611686018427387904" not in text
    assert "``" not in text
    assert "{" not in text, [line for line in text.splitlines() if "{" in line]
    assert "Usage: localfirst logs show [OPTIONS] RESPONSE_ID" in text
    assert "[RESPONSE_IDS]..." in text


def test_shell_completion_is_offered():
    r = run_subprocess("--help")
    assert "--install-completion" in r.stdout and "--show-completion" in r.stdout
    # typer detects the shell from the parent process (sh under make); name it instead.
    shown = run_subprocess("--show-completion", "bash",
                           env={"SHELL": "/bin/bash", "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert shown.returncode == 0 and "_LOCALFIRST_COMPLETE" in shown.stdout
    done = run_subprocess(env={"_LOCALFIRST_COMPLETE": "complete_bash", "COMP_WORDS": "localfirst lo",
                               "COMP_CWORD": "1"})
    assert set(done.stdout.split()) == {"log", "logs"}


def test_one_thing_is_singular(run, tmp_path):
    assert run("only").code == 0
    rid = ids_of(run)[0]["id"]
    out = tmp_path / "one.jsonl"
    assert run("export", "-o", str(out)).err.strip() == f"Exported 1 response to {out}"
    assert run("logs", "rm", rid, "--yes").out.strip() == "Deleted 1 response."
    other = tmp_path / "other.db"
    assert run("--db", str(other), "elsewhere").code == 0
    merged = run("merge", str(other)).out
    assert "1 response," in merged and "1 responses" not in merged and "0 renames" in merged


def test_a_missing_file_is_exit_3_for_merge_and_import_llm(run, tmp_path):
    missing = str(tmp_path / "missing.db")
    for args in (["merge", missing], ["import", "llm", missing]):
        r = run(*args)
        assert_one_line_error(r, missing)
        assert r.code == 3, args


# -- llm's templates with fragments and a schema -----------------------------------------


@pytest.fixture
def llm_template(tmp_path):
    ctx = tmp_path / "context.md"
    ctx.write_text("Project notes.\n")
    rules = tmp_path / "rules.md"
    rules.write_text("Reply in JSON.\n")
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "review.yaml").write_text(
        f"prompt: 'Review: $input'\nfragments:\n- {ctx}\nsystem_fragments:\n- {rules}\n"
        "schema_object:\n  type: object\n  properties:\n    verdict:\n      type: string\n")
    return folder, ctx, rules


def test_a_template_from_llm_sends_its_fragments_and_schema(run, llm_template):
    folder, ctx, rules = llm_template
    r = run("templates", "import", str(folder))
    assert r.code == 0 and r.err == ""  # fragments and schema_object are understood, not warned about
    r = run("-t", "review", "the patch")
    assert r.code == 0, r.err
    assert r.out == "Project notes.\n\nReview: the patch\n"
    row = ids_of(run)[0]
    assert row["system"] == "Reply in JSON."
    assert row["prompt_fragments"][0]["content"] == "Project notes.\n"
    assert row["system_fragments"][0]["source"] == str(rules)
    assert row["schema_json"] == {"type": "object", "properties": {"verdict": {"type": "string"}}}


def test_a_template_schema_reaches_an_http_model(run, llm_template):
    from chat_server import completion, running

    folder, _, _ = llm_template
    assert run("templates", "import", str(folder)).code == 0
    with running() as server:
        assert run("models", "add", "srv", "--base-url", server.base_url, "--model", "m").code == 0
        server.script(completion('{"verdict": "fine"}'))
        assert run("-m", "srv", "--no-stream", "-t", "review", "x").code == 0
        fmt = server.seen[0].body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"]["properties"]["verdict"]


def test_a_template_whose_fragment_is_gone_is_one_line(run, llm_template):
    folder, ctx, _ = llm_template
    assert run("templates", "import", str(folder)).code == 0
    ctx.unlink()
    before = db_state()
    assert_one_line_error(run("-t", "review", "x"), "does not exist")
    assert db_state() == before
