"""``localfirst import llm``: both generations of llm's schema, incremental and read-only."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest
from llm_dbs import (
    CID,
    CID2,
    HAVE_LLM,
    IMG_ID,
    NO_LLM,
    PNG,
    R1,
    R2,
    R3,
    R4,
    URL,
    assert_refused,
    make_current_db,
    make_legacy_db,
    run_llm,
)

from localfirst.importers import import_llm
from localfirst.records import url_attachment_id
from localfirst.store import Store

needs_llm = pytest.mark.skipif(not HAVE_LLM, reason=NO_LLM)


@pytest.fixture(scope="session")
def current_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not HAVE_LLM:
        pytest.skip(NO_LLM)
    return make_current_db(tmp_path_factory.mktemp("llm-user"))


@pytest.fixture
def current_db(current_template: Path, tmp_path: Path) -> Path:
    """A private copy of the folder llm wrote (the picture stays next to it)."""
    folder = tmp_path / "llm"
    shutil.copytree(current_template.parent, folder)
    return folder / "logs.db"


@pytest.fixture
def legacy_db(tmp_path: Path) -> Path:
    return make_legacy_db(tmp_path / "old-logs.db")


def by_prompt(store: Store) -> dict[str | None, object]:
    return {r.prompt: r for r in store.list_responses(count=0)}


def counts(store: Store) -> tuple[int, int, int, int]:
    q = store.conn.execute
    return tuple(q(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[return-value]
                 for t in ("conversations", "responses", "parts", "attachments"))


@needs_llm
def test_current_schema_written_by_llm(fresh_store: Store, current_db: Path) -> None:
    report = import_llm(fresh_store, current_db)
    assert report.imported == report.found == 8
    assert report.problems == [] and report.skipped_tables == []
    got = by_prompt(fresh_store)
    first, second = got["hi there"], got["second turn"]
    assert first.system == "be brief" and first.options == {"example_bool": True}
    assert '"prompt": "hi there"' in first.response
    assert first.input_tokens == 4 and first.output_tokens > 0
    # Conversation grouping: -c continued the first thread.
    assert second.conversation_id == first.conversation_id
    assert len({r.conversation_id for r in got.values()}) == 6
    assert fresh_store.conversations()[-1].name == "hi there"
    thinking = got["think about it"]
    assert thinking.options == {"thinking": True}
    assert thinking.reasoning and [p.type for p in thinking.parts] == ["reasoning", "text"]
    # The picture was still on disk with the same hash: its bytes came along.
    [att] = [p.attachment for p in got["with attachment"].parts if p.type == "attachment"]
    assert att.id == hashlib.sha256(PNG).hexdigest() and att.mime_type == "image/png"
    assert fresh_store.attachment_content(att.id) == PNG
    [url] = [p.attachment for p in got["with url"].parts if p.type == "attachment"]
    assert url.id == url_attachment_id(URL) and url.url == URL and fresh_store.attachment_content(url.id) is None
    # Fragments are expanded into the logged prompt and system prompt.
    frag = got["fragment content here\nwith fragment"]
    assert frag.system == "fragment content here"
    assert frag.extras["llm:fragments"][0]["source"].endswith("frag.txt")
    calls = [r for r in got.values() if r.prompt and r.prompt.startswith('{"prompt": "call tools"')][0]
    [call] = [p for p in calls.parts if p.type == "tool_call"]
    assert call.tool_name == "llm_version" and call.arguments == {} and call.tool_call_id
    assert calls.extras == {"llm:tools": ["llm_version"]}
    [after] = [r for r in got.values() if r.prompt is None]
    [result] = [p for p in after.parts if p.type == "tool_result"]
    assert result.tool_call_id == call.tool_call_id and result.role == "user" and result.text
    assert after.conversation_id == calls.conversation_id
    assert all(r.id == r.id.lower() and len(r.id) == 26 for r in got.values())


def test_legacy_schema(fresh_store: Store, legacy_db: Path) -> None:
    report = import_llm(fresh_store, legacy_db)
    assert (report.imported, report.conversations, report.attachments) == (4, 2, 2)
    assert report.generations == ["conversations/responses"]
    r1 = fresh_store.get_response(R1)
    assert r1.prompt == "FRAGMENT TEXT\nfirst question"
    assert r1.system == "SYSTEM FRAGMENT\n\nbe brief"
    assert r1.options == {"temperature": 0.5} and r1.token_details == {"cached_tokens": 3}
    assert (r1.input_tokens, r1.output_tokens, r1.duration_ms) == (11, 22, 120)
    assert r1.resolved_model == "gpt-4o-2024-08-06" and r1.response == "first answer"
    assert r1.datetime_utc == "2025-01-01T10:00:00.000001Z"
    assert r1.prompt_json == {"messages": []} and r1.response_json == {"id": "chatcmpl-1"}
    assert r1.extras["llm:schema"] == {"type": "object"}
    assert r1.conversation_name == "legacy chat" and r1.conversation_id == CID
    r2 = fresh_store.get_response(R2)
    assert r2.conversation_id == CID and r2.options is None
    assert [(p.type, p.role, p.attachment.id) for p in r2.parts] == [
        ("attachment", "user", IMG_ID), ("attachment", "user", url_attachment_id(URL))]
    assert fresh_store.attachment_content(IMG_ID) == PNG
    r3, r4 = fresh_store.get_response(R3), fresh_store.get_response(R4)
    assert [(p.type, p.tool_name, p.tool_call_id, p.arguments) for p in r3.parts] == [
        ("tool_call", "clock", "call_1", {"tz": "UTC"})]
    assert r3.extras == {"llm:tools": ["clock"]}
    result, image = r4.parts
    assert (result.type, result.text, result.tool_call_id, result.role) == ("tool_result", "12:00", "call_1", "user")
    assert result.extras == {"llm:instance": {"plugin": "p", "name": "Clock", "arguments": '{"fmt": 24}'}}
    assert image.attachment.id == IMG_ID
    assert r4.conversation_id == r3.conversation_id == CID2
    # llm's integer ids (41, 42, 7, 3, fragment 1 and 2) are nowhere in our keys.
    keys = [r[0] for r in fresh_store.conn.execute("SELECT response_id || ordinal FROM parts")]
    assert all(k[:26] in {R1, R2, R3, R4} for k in keys)


def test_reimport_imports_only_what_is_new(fresh_store: Store, legacy_db: Path) -> None:
    import_llm(fresh_store, legacy_db)
    before = counts(fresh_store)
    again = import_llm(fresh_store, legacy_db)
    assert (again.imported, again.already) == (0, 4) and counts(fresh_store) == before
    conn = sqlite3.connect(legacy_db)
    conn.execute("INSERT INTO responses (id, model, prompt, response, conversation_id, datetime_utc, options_json)"
                 " VALUES ('01jq00000000000000000000a9', 'gpt-4o', 'later', 'yes', ?, '2025-02-01T00:00:00', '{}')",
                 [CID])
    conn.commit()
    conn.close()
    third = import_llm(fresh_store, legacy_db)
    assert (third.imported, third.already, third.conversations) == (1, 4, 0)
    assert fresh_store.get_response("01jq00000000000000000000a9").conversation_id == CID


def test_renamed_conversation_and_deleted_response_stay_as_they_are(fresh_store: Store, legacy_db: Path) -> None:
    import_llm(fresh_store, legacy_db)
    fresh_store.rename_conversation(CID, "my name")
    fresh_store.delete([R2])
    report = import_llm(fresh_store, legacy_db)
    assert (report.imported, report.deleted) == (0, 1)
    assert fresh_store.get_response(R1).conversation_name == "my name"


@needs_llm
def test_incremental_with_llm_logging_more(fresh_store: Store, current_db: Path) -> None:
    import_llm(fresh_store, current_db)
    run_llm(current_db.parent, "-m", "echo", "-c", "one more")
    report = import_llm(fresh_store, current_db)
    assert (report.imported, report.already) == (1, 8)
    latest = fresh_store.list_responses(count=1)[0]
    assert latest.prompt == "one more"


@needs_llm
def test_one_database_with_both_generations(fresh_store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "upgraded"
    folder.mkdir()
    make_legacy_db(folder / "logs.db")
    # The llm installed for the tests migrates the old file and continues
    # its latest conversation in the message store.
    run_llm(folder, "-m", "echo", "--cid", CID, "new style")
    report = import_llm(fresh_store, folder / "logs.db")
    assert report.generations == ["threads/turns", "conversations/responses"]
    assert report.imported == 5
    [new] = [r for r in fresh_store.list_responses(count=0) if r.prompt == "new style"]
    assert new.conversation_id == CID and len(fresh_store.history(CID)) == 3


def test_cli_reports_json(run, legacy_db: Path) -> None:
    result = run("import", "llm", str(legacy_db), "--json")
    assert result.code == 0
    assert json.loads(result.out)["imported"] == 4
    again = json.loads(run("import", "llm", str(legacy_db), "--json").out)
    assert (again["imported"], again["already_imported"]) == (0, 4)


def test_row_with_invalid_json_is_reported_and_the_rest_imported(run, legacy_db: Path) -> None:
    conn = sqlite3.connect(legacy_db)
    conn.execute("UPDATE responses SET options_json = '{not json' WHERE id = ?", [R2])
    conn.commit()
    conn.close()
    result = run("import", "llm", str(legacy_db))
    assert result.code == 0, result.err
    assert "Imported 3 responses" in result.out
    assert f"Skipped llm response {R2}: options_json is not valid JSON." in result.out


def test_response_without_a_conversation_gets_its_own(fresh_store: Store, legacy_db: Path) -> None:
    conn = sqlite3.connect(legacy_db)
    conn.execute("INSERT INTO responses (id, model, prompt, response, datetime_utc) "
                 "VALUES ('01JQ00000000000000000000A7', 'gpt-4o', 'alone', 'yes', '2025-03-01 10:00:00')")
    conn.commit()
    conn.close()
    import_llm(fresh_store, legacy_db)
    alone = fresh_store.get_response("01jq00000000000000000000a7")
    assert alone.conversation_id == alone.id and alone.conversation_name == "alone"
    assert alone.datetime_utc == "2025-03-01T10:00:00.000000Z"
    assert import_llm(fresh_store, legacy_db).imported == 0


def test_row_with_an_id_that_is_not_a_ulid(fresh_store: Store, legacy_db: Path) -> None:
    conn = sqlite3.connect(legacy_db)
    conn.execute("INSERT INTO responses (id, model, prompt, response, datetime_utc) "
                 "VALUES ('42', 'gpt-3.5-turbo', 'very old', 'yes', '2023-06-01 10:00:00')")
    conn.commit()
    conn.close()
    report = import_llm(fresh_store, legacy_db)
    assert report.imported == 4 and report.problems == ["llm response 42: id '42' is not a ULID"]


@needs_llm
def test_unknown_part_type_skips_that_turn(fresh_store: Store, current_db: Path) -> None:
    conn = sqlite3.connect(current_db)
    conn.execute("UPDATE parts SET type = 'hologram' WHERE type = 'reasoning'")
    conn.commit()
    conn.close()
    report = import_llm(fresh_store, current_db)
    assert report.imported == 7
    assert report.problems[0].endswith("a part of type 'hologram' is not one this version knows")


@needs_llm
def test_turn_with_invalid_payload_is_reported(fresh_store: Store, current_db: Path) -> None:
    conn = sqlite3.connect(current_db)
    conn.execute("UPDATE parts SET payload = '{broken' WHERE type = 'tool_call'")
    conn.commit()
    conn.close()
    report = import_llm(fresh_store, current_db)
    assert report.imported == 7
    assert len(report.problems) == 1 and "payload is not valid JSON" in report.problems[0]


def test_templates_flag_imports_llm_template_files(run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "summarise.yaml").write_text("system: Be brief.\nprompt: 'Summarise: $input'\nmodel: gpt-4o\n")
    result = run("import", "llm", "--templates", str(folder))
    assert result.code == 0, result.err
    assert "Imported 1 new" in result.out
    shown = run("templates", "show", "summarise")
    assert "Summarise: $input" in shown.out and "gpt-4o" in shown.out
    # with no PATH it reads the templates folder beside llm's database
    monkeypatch.setenv("LLM_USER_PATH", str(tmp_path))
    (folder / "summarise.yaml").write_text("prompt: 'Shorter: $input'\n")
    assert "1 changed" in run("import", "llm", "--templates").out
    assert_refused(run("import", "llm", "--templates", str(tmp_path / "nowhere")), says="not a directory")


@needs_llm
def test_current_database_untouched(fresh_store: Store, current_db: Path) -> None:
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in current_db.parent.iterdir()}
    import_llm(fresh_store, current_db)
    import_llm(fresh_store, current_db)
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in current_db.parent.iterdir()} == before


def test_progress_is_reported(fresh_store: Store, legacy_db: Path) -> None:
    seen: list[tuple[int, int]] = []
    import_llm(fresh_store, legacy_db, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(4, 4)]


def test_progress_bar_on_a_terminal(legacy_db: Path, tmp_path: Path) -> None:
    pty = pytest.importorskip("pty")
    import os
    import subprocess

    main, secondary = pty.openpty()
    env = {**os.environ, "LOCALFIRST_HOME": str(tmp_path / "home"), "COLUMNS": "80"}
    done = subprocess.run([sys.executable, "-m", "localfirst", "import", "llm", str(legacy_db)],
                          stdout=subprocess.PIPE, stderr=secondary, env=env, timeout=60)
    os.close(secondary)
    drawn = b""
    try:
        while chunk := os.read(main, 65536):
            drawn += chunk
    except OSError:
        pass
    os.close(main)
    assert done.returncode == 0 and b"Imported 4 responses" in done.stdout
    assert b"Importing" in drawn


def _content(store: Store) -> list[tuple[object, ...]]:
    q = store.conn.execute
    rows = q("SELECT id, conversation_id, prompt, system, response, reasoning, extras FROM responses ORDER BY id")
    parts = q("SELECT response_id, ordinal, role, type, text, tool_call_id, tool_name, arguments_json, error, "
              "attachment_id FROM parts ORDER BY response_id, ordinal")
    return [*rows.fetchall(), *parts.fetchall()]


@needs_llm
@pytest.mark.parametrize("detach", [False, True], ids=["as-llm-wrote-it", "turn-without-parent"])
def test_batches_of_one_turn_read_what_one_batch_reads(current_db: Path, tmp_path: Path, detach: bool) -> None:
    # Only the chains of a batch's turns are read; a chain that goes above the
    # previous batch's turns (the system prompt of "second turn" is in the first
    # turn's chain) or past them (a turn with no parent message walks its output
    # up to the root) gives the same rows as reading everything at once.
    if detach:
        with sqlite3.connect(current_db) as conn:
            conn.execute("UPDATE turns SET parent_message_hash = NULL WHERE id = "
                         "(SELECT id FROM turns ORDER BY id LIMIT 1 OFFSET 1)")
    whole, single = Store.open(tmp_path / "whole.db"), Store.open(tmp_path / "single.db")
    assert import_llm(whole, current_db).imported == 8
    assert import_llm(single, current_db, batch=1).imported == 8
    assert _content(single) == _content(whole)
    system, prompt, response = whole.conn.execute(
        "SELECT system, prompt, response FROM responses ORDER BY id LIMIT 1 OFFSET 1").fetchone()
    assert system == "be brief"
    if detach:  # its output is the whole chain, the first turn included
        assert prompt is None and response.startswith("be briefhi there")
    else:
        assert prompt == "second turn"
