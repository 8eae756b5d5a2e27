"""Templates in the database: versions, filling, prompting with them, merging between machines."""

from __future__ import annotations

import json

import pytest
from helpers import assert_one_line_error as assert_one_error
from helpers import db_state

from localfirst.errors import BadInput, NotFound
from localfirst.store import Store
from localfirst.templates import (
    add_template,
    add_version,
    fill_template,
    get_template,
    list_templates,
    remove_template,
    template_history,
)

# -- the library -------------------------------------------------------------------


def test_versions_are_kept_and_the_newest_is_current(fresh_store: Store):
    first = add_template(fresh_store, "sum", prompt="Summarize: $input")
    assert add_version(fresh_store, "sum", prompt="Summarize: $input") is None  # nothing changed
    second = add_version(fresh_store, "sum", prompt="Summarize briefly: $input", model="gpt")
    assert second is not None and second.hlc > first.hlc and second.template_id == first.template_id
    assert get_template(fresh_store, "sum").prompt == "Summarize briefly: $input"
    assert [v.id for v in template_history(fresh_store, "sum")] == [second.id, first.id]
    assert [t.name for t in list_templates(fresh_store)] == ["sum"]


def test_keys_are_ulids_and_no_row_is_ever_updated(fresh_store: Store):
    add_template(fresh_store, "a", prompt="x")
    add_version(fresh_store, "a", prompt="y")
    for table in ("templates", "template_versions"):
        ids = [r[0] for r in fresh_store.conn.execute(f"SELECT id FROM {table}")]
        assert all(len(i) == 26 for i in ids)
    assert fresh_store.conn.execute("SELECT count(*) FROM template_versions").fetchone()[0] == 2


def test_rm_writes_a_tombstone(fresh_store: Store):
    t = add_template(fresh_store, "gone", prompt="x")
    add_version(fresh_store, "gone", prompt="y")
    assert remove_template(fresh_store, "gone") == 2
    rows = fresh_store.conn.execute("SELECT tbl, key FROM tombstones").fetchall()
    assert rows == [("templates", t.template_id)]
    with pytest.raises(NotFound):
        get_template(fresh_store, "gone")
    again = add_template(fresh_store, "gone", prompt="new")  # the name may be used again
    assert again.template_id != t.template_id


def test_add_refuses_a_taken_or_bad_name(fresh_store: Store):
    add_template(fresh_store, "a", prompt="x")
    with pytest.raises(BadInput, match="exists"):
        add_template(fresh_store, "a", prompt="y")
    with pytest.raises(BadInput, match="file name"):
        add_template(fresh_store, "../evil", prompt="y")
    with pytest.raises(BadInput, match="--prompt or --system"):
        add_template(fresh_store, "b")


def test_fill_variables_defaults_and_input(fresh_store: Store):
    t = add_template(fresh_store, "t", prompt="Translate to $lang for ${who}: $input. Costs $5.",
                     system="You translate to $lang.", defaults={"who": "a child"}, options={"temperature": 0})
    filled = fill_template(t, input="hello", params={"lang": "French"})
    assert filled.prompt == "Translate to French for a child: hello. Costs $5."
    assert filled.system == "You translate to French."
    assert filled.options == {"temperature": 0}
    assert filled.extras == {"localfirst:template": "t", "localfirst:template_version": t.id}
    with pytest.raises(BadInput, match=r"needs a value for \$lang: add -p lang VALUE"):
        fill_template(t, input="hello", params={})
    with pytest.raises(BadInput, match=r"has no variable \$colour"):
        fill_template(t, input="hello", params={"lang": "x", "colour": "red"})
    with pytest.raises(BadInput, match=r"uses \$input"):
        fill_template(t, input=None, params={"lang": "x"})


def test_input_is_added_when_the_prompt_has_no_input_variable(fresh_store: Store):
    t = add_template(fresh_store, "p", prompt="Fix the grammar.")
    assert fill_template(t, input="me go", params={}).prompt == "Fix the grammar.\n\nme go"
    s = add_template(fresh_store, "s", system="Be terse.")
    assert fill_template(s, input="hi", params={}).prompt == "hi"


def test_same_name_on_two_machines_merges_without_conflict(tmp_path, run):
    """Two stores create "sum" before they ever sync; merging keeps both and resolves to the newest."""
    a_path, b_path = tmp_path / "a.db", tmp_path / "b.db"
    a, b = Store.open(a_path), Store.open(b_path)
    made_a = add_template(a, "sum", prompt="A: $input")
    made_b = add_template(b, "sum", prompt="B: $input")
    add_template(b, "only-b", prompt="b")
    a.close(), b.close()
    assert run("--db", str(a_path), "merge", str(b_path)).code == 0
    assert run("--db", str(b_path), "merge", str(a_path)).code == 0
    for path in (a_path, b_path):
        store = Store.open(path)
        assert get_template(store, "sum").id == made_b.id  # the newer version by HLC, on both
        assert {v.template_id for v in template_history(store, "sum")} == {made_a.template_id, made_b.template_id}
        assert [t.name for t in list_templates(store)] == ["only-b", "sum"]
        store.close()
    r = run("--db", str(a_path), "templates", "history", "sum")
    assert "2 templates were created under this name" in r.out
    # An edit on A after the merge continues the current copy.
    a = Store.open(a_path)
    edited = add_version(a, "sum", prompt="A2: $input")
    assert edited is not None and edited.template_id == made_b.template_id
    a.close()
    # rm on B removes every copy; after merging, it stays removed on A too.
    assert run("--db", str(b_path), "templates", "rm", "sum").code == 0
    assert run("--db", str(a_path), "merge", str(b_path)).code == 0
    a = Store.open(a_path)
    with pytest.raises(NotFound):
        get_template(a, "sum")
    # A2 was made before A saw the rm: the delete still wins, as deletes do.
    assert a.conn.execute("SELECT count(*) FROM template_versions WHERE template_id IN (?, ?)",
                          [made_a.template_id, made_b.template_id]).fetchone()[0] == 0
    a.close()


# -- the commands ----------------------------------------------------------------------


def test_add_list_show_history_rm(run):
    r = run("templates", "add", "sum", "--prompt", "Summarize in $n words: $input", "--model", "echo",
            "-o", "temperature", "0.2", "-d", "n", "10")
    assert r.code == 0, r.err
    assert "$n $input" in r.out
    r = run("templates", "list")
    assert "sum" in r.out and "$n $input" in r.out
    data = json.loads(run("templates", "list", "--json").out)
    assert data[0]["options"] == {"temperature": 0.2} and data[0]["defaults"] == {"n": "10"}
    shown = run("templates", "show", "sum").out
    assert "prompt: 'Summarize in $n words: $input'" in shown and "temperature: 0.2" in shown
    assert json.loads(run("templates", "show", "sum", "--json").out)["variables"] == ["n", "input"]
    assert len(run("templates", "history", "sum").out.strip().splitlines()) == 2
    assert run("templates", "rm", "sum").out.startswith("Deleted template sum (1 version)")
    assert run("templates", "list").out.strip() == "No templates."


def test_prompt_with_a_template(run):
    run("templates", "add", "tr", "--prompt", "Translate to $lang: $input", "--system", "Be exact.",
        "--model", "echo", "-o", "temperature", "0.1")
    r = run("prompt", "-t", "tr", "-p", "lang", "German", "good morning")
    assert r.code == 0, r.err
    assert r.out == "Translate to German: good morning\n"
    [row] = json.loads(run("logs", "list", "--json").out)
    assert row["system"] == "Be exact." and row["options"] == {"temperature": 0.1}
    assert row["extras"]["localfirst:template"] == "tr"
    # the command line overrides the template
    r = run("prompt", "-t", "tr", "-p", "lang", "Dutch", "-s", "Loose.", "-o", "temperature", "0.9", "x")
    row = json.loads(run("logs", "list", "-n", "1", "--json").out)[0]
    assert (row["system"], row["options"]) == ("Loose.", {"temperature": 0.9})
    # stdin is the input too
    r = run("prompt", "-t", "tr", "-p", "lang", "Welsh", input="from stdin")
    assert r.out == "Translate to Welsh: from stdin\n"


@pytest.mark.parametrize(("args", "fragments"), [
    (["-t", "tr", "-p", "colour", "red", "-p", "lang", "x", "hi"], ["no variable $colour"]),
    (["-t", "tr", "hi"], ["needs a value for $lang"]),
    (["-t", "tr", "-p", "lang", "x"], ["uses $input"]),
    (["-t", "missing", "hi"], ["no template named 'missing'"]),
    (["-p", "lang", "x", "hi"], ["add -t NAME"]),
])
def test_template_mistakes_log_nothing(run, args, fragments):
    run("templates", "add", "tr", "--prompt", "Translate to $lang: $input", "--model", "echo")
    before = db_state()
    r = run("prompt", *args)
    assert_one_error(r, *fragments)
    assert db_state() == before


def test_template_command_mistakes(run):
    run("templates", "add", "a", "--prompt", "x")
    before = db_state()
    assert_one_error(run("templates", "add", "a", "--prompt", "y"), "exists")
    assert_one_error(run("templates", "add", "b"), "--prompt or --system")
    assert_one_error(run("templates", "show", "nope"), "no template named 'nope'")
    assert_one_error(run("templates", "rm", "nope"), "no template named 'nope'")
    assert_one_error(run("templates", "history", "nope"), "no template named 'nope'")
    assert db_state() == before
