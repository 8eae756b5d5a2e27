"""The llm plugin, through llm itself: the editable install in .venv registers its entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from llm_dbs import HAVE_LLM, NO_LLM
from llm_machines import Machine, machine

pytestmark = pytest.mark.skipif(not HAVE_LLM, reason=NO_LLM)


@pytest.fixture
def m(tmp_path: Path) -> Machine:
    return machine(tmp_path / "m")


def _echo(done: subprocess.CompletedProcess[str]) -> dict[str, object]:
    parsed: dict[str, object] = json.loads(done.stdout)
    return parsed


def test_llm_lists_the_plugin_and_its_hooks(m: Machine) -> None:
    plugins = {p["name"]: p for p in json.loads(m.llm("plugins").stdout)}
    assert set(plugins["localfirst"]["hooks"]) == {
        "register_commands", "register_template_loaders", "register_fragment_loaders"}


def test_a_template_from_the_library(m: Machine) -> None:
    m.lf("templates", "add", "summarise", "--system", "Be brief.", "--prompt", "Summarise: $input")
    first = json.loads(m.lf("templates", "show", "summarise", "--json").stdout)["version_id"]
    m.lf("templates", "edit", "summarise", EDITOR="sed -i s/Summarise/Shorten/")
    out = _echo(m.llm("-m", "echo", "-t", "lf:summarise", "the text"))
    assert (out["prompt"], out["system"]) == ("Shorten: the text", "Be brief.")
    old = _echo(m.llm("-m", "echo", "-t", f"lf:summarise@{first}", "the text"))
    assert (old["prompt"], old["system"]) == ("Summarise: the text", "Be brief.")
    # llm logged it as it logs any prompt.
    assert json.loads(m.llm("logs", "list", "-n", "1", "--json").stdout)[0]["prompt"] == "Summarise: the text"


def test_a_team_template_by_label(m: Machine, tmp_path: Path) -> None:
    assert m.lf("team", "create", "acme", (tmp_path / "lib").as_uri()).returncode == 0
    m.lf("templates", "add", "acme/review", "--prompt", "Review: $input")
    m.lf("templates", "label", "acme/review", "production")
    out = _echo(m.llm("-m", "echo", "-t", "lf:acme/review@production", "the diff"))
    assert out["prompt"] == "Review: the diff"


def test_a_template_imported_from_llm_keeps_its_fragments(m: Machine, tmp_path: Path) -> None:
    (tmp_path / "note.txt").write_text("a fragment from a file")
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "withfrag.yaml").write_text(f"prompt: 'Read: $input'\nfragments:\n- {tmp_path / 'note.txt'}\n")
    m.lf("templates", "import", str(folder))
    out = _echo(m.llm("-m", "echo", "-t", "lf:withfrag", "this"))
    assert "a fragment from a file" in str(out["prompt"]) and "Read: this" in str(out["prompt"])


@pytest.mark.parametrize("spec, says", [
    ("lf:nothing-here", "no template named 'nothing-here'"),
    ("lf:team/summarise@production", "no team named 'team'"),
    ("lf:summarise@production", "no label or version 'production'"),
    ("lf:summarise@01JD0000000000000000000000", "no label or version"),
])
def test_unknown_templates(m: Machine, spec: str, says: str) -> None:
    m.lf("templates", "add", "summarise", "--prompt", "Summarise: $input")
    done = m.llm("-m", "echo", "-t", spec, "x", check=False)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in done.stderr, done.stderr
    # Nothing was logged: llm stopped before it made its database.
    assert not m.llm_db.exists() or m.query("SELECT count(*) FROM turns") == [(0,)]


def test_a_logged_response_as_a_fragment(m: Machine) -> None:
    rid = m.lf("log", "-m", "gpt-x", "-p", "What is WAL?", "-r", "A write-ahead log.").stdout.strip()
    out = _echo(m.llm("-m", "echo", "-f", f"lf:{rid}", "Explain it again"))
    prompt = str(out["prompt"])
    assert "What is WAL?" in prompt and "A write-ahead log." in prompt and prompt.endswith("Explain it again")
    # llm records the fragment with its source.
    (source,) = m.query("SELECT source FROM fragments")[0]
    assert source == f"lf:{rid}"


def test_unknown_and_deleted_fragments(m: Machine) -> None:
    rid = m.lf("log", "-m", "gpt-x", "-p", "secret question", "-r", "secret answer").stdout.strip()
    m.lf("logs", "rm", rid, "--yes")
    for spec, says in ((f"lf:{rid}", "was deleted"), ("lf:01JD0000000000000000000000", "no response with id"),
                       ("lf:not-an-id", "not a response id")):
        done = m.llm("-m", "echo", "-f", spec, "x", check=False)
        assert done.returncode != 0
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and says in lines[0], done.stderr
    assert not m.llm_db.exists() or m.query("SELECT count(*) FROM turns") == [(0,)]


def test_llm_localfirst_runs_localfirsts_commands(m: Machine, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    remote.mkdir()
    m.llm("localfirst", "remote", "add", "home", remote.as_uri())
    assert "home" in m.llm("localfirst", "remote", "list").stdout
    m.llm("localfirst", "templates", "add", "t1", "--prompt", "Hi $input")
    assert "t1" in m.llm("localfirst", "templates", "list").stdout
    rid = m.llm("localfirst", "log", "-m", "x", "-p", "p", "-r", "r").stdout.strip()
    m.llm("localfirst", "logs", "rm", rid, "--yes")
    assert "Synced" in m.llm("localfirst", "sync").stdout
    assert "Usage: localfirst" in m.llm("localfirst", "--help").stdout
    # localfirst's errors keep their one line and their exit code.
    done = m.llm("localfirst", "logs", "show", "01JD0000000000000000000000", check=False)
    assert done.returncode == 3 and done.stderr.startswith("Error: ") and len(done.stderr.splitlines()) == 1


def test_loading_the_plugin_imports_nothing_of_the_store() -> None:
    code = ("import sys, localfirst.llm_plugin; "
            "print(sorted(m for m in sys.modules if m.startswith('localfirst')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['localfirst', 'localfirst.llm_plugin']"
