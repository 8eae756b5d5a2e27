"""export --format jsonl, then import jsonl: lossless, idempotent, all or nothing."""

from __future__ import annotations

import base64
import io
import json
import sqlite3
from pathlib import Path

import pytest
from helpers import assert_one_line_error, db_state
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localfirst.db import connect
from localfirst.exporters import export
from localfirst.records import Attachment, Part, Response
from localfirst.registry import TABLES
from localfirst.restore import import_jsonl
from localfirst.store import Store
from localfirst.templates import add_template, add_version


def canonical(conn: sqlite3.Connection) -> dict[str, list[tuple[object, ...]]]:
    """Every synced row, without local columns, in key order."""
    out = {}
    for table in TABLES:
        cols = ", ".join(table.columns)
        out[table.name] = conn.execute(f"SELECT {cols} FROM {table.name} ORDER BY {', '.join(table.key)}").fetchall()
    return out


def _export(store: Store) -> str:
    buf = io.StringIO()
    export(store, "jsonl", stream=buf)
    return buf.getvalue()


def _fresh() -> Store:
    return Store(connect(":memory:"))


texts = st.one_of(st.none(), st.text(max_size=30))
extras = st.one_of(st.none(), st.dictionaries(st.sampled_from(["a:b", "llm:x", "z:q"]),
                                              st.one_of(st.integers(), st.text(max_size=5)), min_size=1))
parts = st.one_of(
    st.builds(Part, type=st.just("text"), role=st.sampled_from(["user", "assistant"]), text=st.text(max_size=20),
              extras=extras),
    st.builds(Part, type=st.just("reasoning"), role=st.just("assistant"), text=st.text(max_size=20)),
    st.builds(Part, type=st.just("tool_call"), role=st.just("assistant"), tool_call_id=texts,
              tool_name=st.text(min_size=1, max_size=8), arguments=st.one_of(st.none(), st.dictionaries(
                  st.text(max_size=4), st.integers(), max_size=2))),
    st.builds(Part, type=st.just("tool_result"), role=st.just("user"), tool_call_id=texts, tool_name=texts,
              text=texts, error=texts),
    st.builds(Part, type=st.just("attachment"), role=st.just("user"), attachment=st.one_of(
        st.builds(Attachment, content=st.binary(max_size=40), mime_type=st.sampled_from([None, "image/png"])),
        st.builds(Attachment, content=st.none(), url=st.just("https://example.com/a.png"),
                  id=st.just("3b5f0f9e0bb4ab1f8a3c8d2a3d7bb3a06f2f0bb0b6ec3b0a4f3c6d0e5f1a2b3c")))),
)
responses = st.builds(
    Response, model=st.text(min_size=1, max_size=8), prompt=texts, response=texts, system=texts,
    resolved_model=texts, prompt_json=st.one_of(st.none(), st.lists(st.integers(), max_size=2)),
    options=st.one_of(st.none(), st.dictionaries(st.text(max_size=4), st.floats(allow_nan=False,
                                                                                  allow_infinity=False))),
    response_json=st.one_of(st.none(), st.dictionaries(st.text(max_size=3), st.booleans(), max_size=2)),
    input_tokens=st.one_of(st.none(), st.integers(0, 10**9)), output_tokens=st.one_of(st.none(), st.integers(0, 9)),
    token_details=st.one_of(st.none(), st.just({"cached": 3})), duration_ms=st.one_of(st.none(), st.integers(0, 99)),
    finish_reason=texts, simulated=st.booleans(), extras=extras, parts=st.lists(parts, max_size=3),
    conversation_name=texts,
)


def _url_fix(r: Response) -> Response:
    from localfirst.records import url_attachment_id

    for p in r.parts:
        if p.attachment is not None and p.attachment.url:
            p.attachment.id = url_attachment_id(p.attachment.url)
    return r


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(st.lists(responses.map(_url_fix), min_size=1, max_size=3), min_size=1, max_size=3),
       continue_first=st.booleans(), rename=st.one_of(st.none(), st.text(max_size=10)), template=st.booleans())
def test_export_then_import_into_an_empty_home_recreates_every_row(
        batches: list[list[Response]], continue_first: bool, rename: str | None, template: bool) -> None:
    source = _fresh()
    cids: list[str] = []
    for batch in batches:
        if continue_first and cids:
            for r in batch:
                r.conversation_id = cids[0]
        source.log_many(batch)
        cids.append(batch[0].conversation_id or "")
    if rename is not None:
        source.rename_conversation(cids[0], rename)
    if template:
        add_template(source, "greet", prompt="hello $input", system="be brief")
        add_version(source, "greet", prompt="hello again $input", options={"temperature": 0.5})
    text = _export(source)
    target = _fresh()
    result = import_jsonl(target, io.StringIO(text))
    assert canonical(target.conn) == canonical(source.conn)
    assert result.added.get("responses", 0) == sum(len(b) for b in batches)
    again = import_jsonl(target, io.StringIO(text))
    assert canonical(target.conn) == canonical(source.conn) and not any(again.added.values())
    assert again.present == sum(len(b) for b in batches)


def test_import_into_a_database_with_other_rows_adds_and_keeps(tmp_path: Path) -> None:
    source, target = _fresh(), _fresh()
    rid = source.log(Response(model="m", prompt="from the backup"))
    mine = target.log(Response(model="m", prompt="already here"))
    gone = source.log(Response(model="m", prompt="deleted here"))
    target_text = _export(source)
    import_jsonl(target, io.StringIO(target_text))
    target.delete([gone])
    result = import_jsonl(target, io.StringIO(target_text))
    ids = {r.id for r in target.list_responses(count=0)}
    assert ids == {rid, mine} and result.deleted == 1 and result.present == 1


@pytest.fixture
def exported(tmp_path: Path) -> list[dict[str, object]]:
    source = _fresh()
    source.log(Response(model="m", prompt="one", parts=[
        Part(type="attachment", role="user", attachment=Attachment(b"bytes", "text/plain"))]))
    cid = source.list_responses()[0].conversation_id
    source.log(Response(model="m", prompt="two", conversation_id=cid))
    return [json.loads(line) for line in _export(source).splitlines()]


def _write(path: Path, lines: list[object]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def _bad(exported: list[dict[str, object]]) -> dict[str, tuple[list[object], str]]:
    first, second = exported
    unknown = {**second, "colour": "red"}
    wrong = {**second, "input_tokens": "many"}
    att = json.loads(json.dumps(first))
    att["parts"][0]["attachment"]["content_base64"] = base64.b64encode(b"other bytes").decode()
    orphan = {k: v for k, v in first.items() if k != "conversation"}
    return {
        "not json": ([first, "{not json"], "line 2 is not JSON"),
        "wrong shape": ([first, [1, 2]], "line 2: a line must be a JSON object"),
        "wrong type": ([first, wrong], "line 2: input_tokens must be an integer"),
        "unknown key": ([first, unknown], "line 2: the response has an unknown key 'colour'"),
        "attachment bytes": ([att, second], "line 1: parts[0].attachment: the bytes do not match"),
        "missing conversation": ([orphan, second], "line 1: its conversation"),
    }


@pytest.mark.parametrize("case", ["not json", "wrong shape", "wrong type", "unknown key", "attachment bytes",
                                  "missing conversation"])
def test_a_bad_line_is_named_and_nothing_is_applied(run, tmp_path: Path, exported, case: str) -> None:
    lines, message = _bad(exported)[case]
    run("log", "-m", "m", "-p", "already here")
    before = db_state()
    path = _write(tmp_path / "bad.jsonl", lines)
    result = run("import", "jsonl", str(path))
    assert_one_line_error(result, message, "nothing was imported")
    assert result.code == 2
    assert db_state() == before


def test_the_cli_reads_a_file_or_stdin_and_a_missing_file_creates_nothing(run, tmp_path: Path, exported) -> None:
    from localfirst import paths

    assert_one_line_error(run("import", "jsonl", str(tmp_path / "nope.jsonl")), "does not exist")
    assert not paths.default_db_path().exists()
    text = "".join(json.dumps(x) + "\n" for x in exported)
    first = run("import", "jsonl", "-", input=text)
    assert first.code == 0 and "added 1 conversations, 1 attachments, 2 responses, 1 parts" in first.out
    again = run("import", "jsonl", "-", "--json", input=text)
    assert json.loads(again.out)["already_here"] == 2
    listed = run("logs", "list", "--json")
    assert [r["prompt"] for r in json.loads(listed.out)] == ["one", "two"]
