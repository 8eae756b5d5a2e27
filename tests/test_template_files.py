"""llm's template YAML files: import, export, edit in $EDITOR."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest
import yaml
from helpers import assert_one_line_error as assert_one_error
from helpers import db_state

from localfirst import paths
from localfirst.store import Store
from localfirst.template_files import dump_template_yaml
from localfirst.templates import get_template

SUMMARIZE = """\
# Used by the support team; keep it short.
model: gpt-4o-mini
system: You summarize support tickets.
prompt: |
  Summarize this ticket in $words words:

  $input
defaults:
  words: 50
options:
  temperature: 0.2
"""
TOOLS = """\
prompt: 'Look up $thing'
schema_object:
  type: object
  properties:
    name: {type: string}
functions: |
  def lookup(q): return q
"""
PLAIN = "Just a prompt about $input\n"


@pytest.fixture(autouse=True)
def seeded(run) -> None:
    """A database with something in it, so that "unchanged" means something."""
    assert run("log", "-m", "echo", "-p", "earlier", "-r", "kept").code == 0


@pytest.fixture
def team(tmp_path: Path) -> Path:
    folder = tmp_path / "team"
    folder.mkdir()
    (folder / "summarize.yaml").write_text(SUMMARIZE)
    (folder / "tools.yml").write_text(TOOLS)
    (folder / "plain.yaml").write_text(PLAIN)
    (folder / "notes.txt").write_text("not a template")
    return folder


def test_import_then_export_gives_the_same_files(run, team, tmp_path):
    r = run("templates", "import", str(team))
    assert r.code == 0, r.err
    assert r.out.strip() == "Imported 3 new, 0 changed, 0 unchanged templates"
    # schema_object is llm's and used when the template runs; functions is not known.
    assert r.err.strip() == "Warning: tools: kept unknown keys functions as extras"
    out = tmp_path / "out"
    assert run("templates", "export", str(out)).code == 0
    assert sorted(p.name for p in out.iterdir()) == ["plain.yaml", "summarize.yaml", "tools.yml"]
    for p in out.iterdir():
        assert p.read_bytes() == (team / p.name).read_bytes()


def test_imported_fields_and_extras(run, team):
    run("templates", "import", str(team))
    store = Store.open(paths.home() / "logs.db")
    s = get_template(store, "summarize")
    assert (s.model, s.system, s.options, s.defaults) == (
        "gpt-4o-mini", "You summarize support tickets.", {"temperature": 0.2}, {"words": 50})
    assert s.variables() == ["words", "input"]
    t = get_template(store, "tools")
    assert t.extras is not None and t.extras["yaml:schema_object"]["type"] == "object"
    assert get_template(store, "plain").prompt == PLAIN.strip()
    # Without the kept source, the YAML written says the same thing, unknown keys included.
    for name, text in (("summarize", SUMMARIZE), ("tools", TOOLS)):
        assert yaml.safe_load(dump_template_yaml(get_template(store, name), use_source=False)) == yaml.safe_load(text)
    store.close()


def test_import_again_adds_versions_only_for_changed_files(run, team):
    run("templates", "import", str(team))
    (team / "plain.yaml").write_text("A changed prompt about $input\n")
    r = run("templates", "import", str(team))
    assert r.out.strip() == "Imported 0 new, 1 changed, 2 unchanged templates"
    assert len(run("templates", "history", "plain").out.strip().splitlines()) == 3


def test_strict_refuses_unknown_keys_and_imports_nothing(run, team):
    before = db_state()
    r = run("templates", "import", "--strict", str(team))
    assert_one_error(r, "tools.yml", "unknown keys functions")
    assert db_state() == before


@pytest.mark.parametrize(("text", "fragment"), [
    ("prompt: [unclosed\n", "is not valid YAML"),
    ("prompt: 'a'\n  bad: indent\n", "is not valid YAML"),
    ("- a list\n- not a mapping\n", "must be a YAML mapping"),
    ("prompt: {a: 1}\n", "prompt must be a string"),
    ("prompt: x\noptions: [1, 2]\n", "options must be a mapping"),
    ("", "must be a YAML mapping"),
])
def test_bad_yaml_is_one_error_and_imports_nothing(run, team, text, fragment):
    (team / "zz-bad.yaml").write_text(text)
    before = db_state()
    r = run("templates", "import", str(team))
    assert_one_error(r, "zz-bad.yaml", fragment)
    assert db_state() == before
    assert run("templates", "list").out.strip() == "No templates."


def test_import_needs_a_directory_with_templates(run, tmp_path):
    assert_one_error(run("templates", "import", str(tmp_path / "nope")), "is not a directory")
    assert_one_error(run("templates", "import", str(tmp_path)), "no template files")
    (tmp_path / "a.yaml").write_text("prompt: x\n")
    (tmp_path / "a.yml").write_text("prompt: y\n")
    assert_one_error(run("templates", "import", str(tmp_path)), "would both be template 'a'")


def test_export_writes_yaml_for_templates_made_on_the_command_line(run, tmp_path):
    run("templates", "add", "multi", "--prompt", "line one\nline two $input", "-d", "x", "1",
        "-o", "temperature", "0.5")
    run("templates", "export", str(tmp_path / "out"))
    text = (tmp_path / "out" / "multi.yaml").read_text()
    assert "prompt: |" in text
    assert yaml.safe_load(text) == {"prompt": "line one\nline two $input", "defaults": {"x": "1"},
                                    "options": {"temperature": 0.5}}


def _editor(tmp_path: Path, body: str) -> str:
    script = tmp_path / "editor.py"
    script.write_text("import sys\npath = sys.argv[1]\n" + body)
    return f"{sys.executable} {script}"


def test_edit_in_editor_adds_a_version(run, tmp_path, monkeypatch):
    run("templates", "add", "greet", "--prompt", "Hello $input")
    monkeypatch.setenv("EDITOR", _editor(tmp_path, (
        "text = open(path).read()\n"
        "open(path, 'w').write('# edited\\n' + text.replace('Hello', 'Good day') + 'model: echo\\n')\n"
    )))
    r = run("templates", "edit", "greet")
    assert r.code == 0, r.err
    assert r.out.strip() == "Saved a new version of greet"
    assert run("prompt", "-t", "greet", "you").out == "Good day you\n"  # model from the edit
    assert len(run("templates", "history", "greet").out.strip().splitlines()) == 3
    run("templates", "export", str(tmp_path / "out"))
    assert (tmp_path / "out" / "greet.yaml").read_text().startswith("# edited\n")


def test_edit_without_changes_adds_nothing(run, tmp_path, monkeypatch):
    run("templates", "add", "greet", "--prompt", "Hello $input")
    monkeypatch.setenv("EDITOR", _editor(tmp_path, "pass\n"))
    before = db_state()
    assert run("templates", "edit", "greet").out.strip() == "No changes to greet"
    assert db_state() == before


@pytest.mark.parametrize(("body", "fragment"), [
    ("open(path, 'w').write('prompt: [broken\\n')\n", "is not valid YAML"),
    ("sys.exit(3)\n", "exited with status 3"),
])
def test_edit_failures_change_nothing(run, tmp_path, monkeypatch, body, fragment):
    run("templates", "add", "greet", "--prompt", "Hello $input")
    monkeypatch.setenv("EDITOR", _editor(tmp_path, body))
    before = db_state()
    assert_one_error(run("templates", "edit", "greet"), fragment)
    assert db_state() == before


def test_edit_needs_an_editor(run, monkeypatch):
    run("templates", "add", "greet", "--prompt", "Hello $input")
    monkeypatch.delenv("EDITOR", raising=False)
    monkeypatch.delenv("VISUAL", raising=False)
    assert_one_error(run("templates", "edit", "greet"), "set $EDITOR")


def test_export_target_must_be_a_directory(run, tmp_path):
    run("templates", "add", "a", "--prompt", "x")
    f = tmp_path / "file"
    f.write_text("")
    assert_one_error(run("templates", "export", str(f)), "is not a directory")
    assert stat.S_ISREG(f.stat().st_mode)
