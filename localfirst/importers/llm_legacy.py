"""Reading llm's older tables: ``conversations``, ``responses`` and their satellites.

Columns arrived over llm's versions (tokens, schemas, resolved_model,
reasoning); a column this database lacks reads as NULL. Satellite tables are
read only for the responses being imported (the ``temp._lf_want`` table).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from .llm_rows import Attachments, Problem, Thread, Turn, dumps, json_text, ulid, utc
from .llm_source import LlmSource

__all__ = ["legacy_ids", "read_legacy"]


def legacy_ids(source: LlmSource) -> Iterator[str]:
    return (r[0] for r in source.conn.execute("SELECT id FROM responses") if r[0] is not None)


def read_legacy(
    source: LlmSource, atts: Attachments, problems: list[str]
) -> tuple[dict[str, Thread], list[Turn]]:
    """Responses whose ids are in ``temp._lf_want``, as rows of ours."""
    c = source.col
    sql = (
        "SELECT r.id, r.conversation_id, r.model, " + ", ".join(c("responses", n, "r") for n in (
            "resolved_model", "prompt", "system", "prompt_json", "options_json", "response",
            "response_json", "reasoning", "input_tokens", "output_tokens", "token_details",
            "duration_ms", "datetime_utc", "schema_id"))
        + ", " + ", ".join(
            f'json_valid(r."{n}")' if source.has("responses", n) else "NULL"
            for n in ("prompt_json", "options_json", "response_json", "token_details"))
        + " FROM temp._lf_want w CROSS JOIN responses r ON r.id = w.id ORDER BY r.id"
    )
    rows = source.conn.execute(sql).fetchall()
    extra = _Satellites(source, atts, problems)
    names = _conversations(source)
    threads: dict[str, Thread] = {}
    turns: list[Turn] = []
    for row in rows:
        try:
            turn = _turn(row, extra)
        except Problem as exc:
            problems.append(f"llm response {row[0]}: {exc}")
            continue
        v = turn.values
        cid = v["conversation_id"]
        thread = threads.get(cid)
        if thread is None:
            name, model = names.get(cid, (None, None))
            threads[cid] = Thread(cid, name, model or v["model"], v["datetime_utc"])
        elif v["datetime_utc"] < thread.created_utc:
            thread.created_utc = v["datetime_utc"]
        turns.append(turn)
    return threads, turns


def _conversations(source: LlmSource) -> dict[str, tuple[str | None, str | None]]:
    if not source.has("conversations", "id"):
        return {}
    sql = (f"SELECT id, {source.col('conversations', 'name')}, {source.col('conversations', 'model')} "
           "FROM conversations WHERE id IN (SELECT conversation_id FROM temp._lf_want w "
           "CROSS JOIN responses r ON r.id = w.id)")
    return {str(r[0]).lower(): (r[1], r[2]) for r in source.conn.execute(sql) if r[0] is not None}


def _turn(row: tuple[Any, ...], extra: _Satellites) -> Turn:
    (llm_id, cid, model, resolved, prompt, system, prompt_json, options_json, response,
     response_json, reasoning, in_tok, out_tok, token_details, duration, when, schema_id,
     prompt_ok, options_ok, response_ok, details_ok) = row
    rid = ulid(llm_id, "id")
    # A response logged outside any conversation gets its own; its id is
    # the response's, so a re-import finds the same one.
    conversation = ulid(cid, "conversation_id") if cid else rid
    prompt_fragments = extra.fragments.get(("prompt", llm_id), [])
    system_fragments = extra.fragments.get(("system", llm_id), [])
    if prompt_fragments:
        # llm sent the fragments, then the prompt, one per line.
        prompt = "\n".join([f[0] for f in prompt_fragments] + ([prompt] if prompt else []))
    if system_fragments:
        bits = [b.strip() for b in [f[0] for f in system_fragments] + [system or ""] if b.strip()]
        system = "\n\n".join(bits)
    extras: dict[str, Any] = {}
    if prompt_fragments:
        extras["llm:fragments"] = [{"hash": f[1], "source": f[2]} for f in prompt_fragments]
    if system_fragments:
        extras["llm:system_fragments"] = [{"hash": f[1], "source": f[2]} for f in system_fragments]
    if llm_id in extra.tools:
        extras["llm:tools"] = extra.tools[llm_id]
    if schema_id and schema_id in extra.schemas:
        extras["llm:schema"] = extra.schemas[schema_id]
    values = {
        "id": rid, "conversation_id": conversation, "model": model or "unknown",
        "resolved_model": resolved, "prompt": prompt or None, "system": system or None,
        "prompt_json": json_text(prompt_json, "prompt_json", valid=prompt_ok),
        "options_json": json_text(options_json, "options_json", empty_is_null=True, valid=options_ok),
        "response": response or None,
        "response_json": json_text(response_json, "response_json", valid=response_ok),
        "reasoning": reasoning, "input_tokens": in_tok, "output_tokens": out_tok,
        "token_details": json_text(token_details, "token_details", empty_is_null=True, valid=details_ok),
        "duration_ms": duration, "datetime_utc": utc(when, "datetime_utc"),
        "finish_reason": None, "simulated": 0, "extras": dumps(extras or None),
    }
    turn = Turn(values)
    for att_id in extra.attachments.get(llm_id, []):
        turn.parts.append(("user", "attachment", None, None, None, None, None, att_id, None))
    for part in extra.results.get(llm_id, []):
        turn.parts.append(part)
    for part in extra.calls.get(llm_id, []):
        turn.parts.append(part)
    return turn


class _Satellites:
    """Fragments, attachments, tools and schemas of the wanted responses, by response id."""

    def __init__(self, source: LlmSource, atts: Attachments, problems: list[str]) -> None:
        self.fragments: dict[tuple[str, str], list[tuple[str, str, str | None]]] = defaultdict(list)
        self.attachments: dict[str, list[str]] = defaultdict(list)
        self.calls: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        self.results: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        self.tools: dict[str, list[str]] = defaultdict(list)
        self.schemas: dict[str, Any] = {}
        self._source = source
        q = source.conn.execute
        if source.has("fragments", "id", "hash", "content"):
            for kind in ("prompt", "system"):
                table = f"{kind}_fragments"
                if source.has(table, "response_id", "fragment_id", "order"):
                    for rid, content, hash_, src in q(
                        f'SELECT t.response_id, f.content, f.hash, {source.col("fragments", "source", "f")} '
                        f'FROM {table} t JOIN temp._lf_want w ON w.id = t.response_id '
                        f'JOIN fragments f ON f.id = t.fragment_id ORDER BY t.response_id, t."order"'):
                        self.fragments[(kind, rid)].append((content or "", hash_, src))
        if source.has("prompt_attachments", "response_id", "attachment_id") and source.has("attachments", "id"):
            for rid, aid, mime, path, url, content in q(
                f'SELECT pa.response_id, a.id, {source.col("attachments", "type", "a")}, '
                f'{source.col("attachments", "path", "a")}, {source.col("attachments", "url", "a")}, '
                f'{source.col("attachments", "content", "a")} FROM prompt_attachments pa '
                'JOIN temp._lf_want w ON w.id = pa.response_id JOIN attachments a ON a.id = pa.attachment_id '
                f'ORDER BY pa.response_id, {source.col("prompt_attachments", "order", "pa")}'):
                try:
                    self.attachments[rid].append(atts.add(aid, mime, path, url, content))
                except Problem as exc:
                    problems.append(f"llm response {rid}: {exc}")
        if source.has("tool_calls", "response_id", "name", "arguments"):
            for rid, name, args, call_id in q(
                f'SELECT t.response_id, t.name, t.arguments, {source.col("tool_calls", "tool_call_id", "t")} '
                'FROM tool_calls t JOIN temp._lf_want w ON w.id = t.response_id ORDER BY t.id'):
                arguments = json_text(args, "tool_calls.arguments") if _valid(args) else dumps(args)
                self.calls[rid].append(("assistant", "tool_call", None, call_id, name, arguments, None, None, None))
        if source.has("tool_results", "response_id", "name", "output"):
            self._results(atts, problems)
        if source.has("tool_responses", "tool_id", "response_id") and source.has("tools", "id", "name"):
            for rid, name in q("SELECT tr.response_id, t.name FROM tool_responses tr "
                               "JOIN temp._lf_want w ON w.id = tr.response_id "
                               "JOIN tools t ON t.id = tr.tool_id ORDER BY tr.response_id, t.name"):
                self.tools[rid].append(name)
        if source.has("schemas", "id", "content") and source.has("responses", "schema_id"):
            for sid, content in q("SELECT id, content FROM schemas WHERE id IN (SELECT schema_id FROM "
                                  "temp._lf_want w CROSS JOIN responses r ON r.id = w.id)"):
                self.schemas[sid] = json.loads(content) if _valid(content) else content

    def _results(self, atts: Attachments, problems: list[str]) -> None:
        source = self._source
        has_instances = source.has("tool_results", "instance_id") and source.has(
            "tool_instances", "id", "plugin", "name", "arguments")
        instance_cols = "ti.plugin, ti.name, ti.arguments" if has_instances else "NULL, NULL, NULL"
        join = " LEFT JOIN tool_instances ti ON ti.id = t.instance_id" if has_instances else ""
        by_result: dict[int, list[str]] = defaultdict(list)
        if source.has("tool_results_attachments", "tool_result_id", "attachment_id"):
            for trid, aid, mime, path, url, content in source.conn.execute(
                f'SELECT tra.tool_result_id, a.id, {source.col("attachments", "type", "a")}, '
                f'{source.col("attachments", "path", "a")}, {source.col("attachments", "url", "a")}, '
                f'{source.col("attachments", "content", "a")} FROM tool_results_attachments tra '
                'JOIN tool_results t ON t.id = tra.tool_result_id JOIN temp._lf_want w ON w.id = t.response_id '
                'JOIN attachments a ON a.id = tra.attachment_id ORDER BY tra.tool_result_id, tra."order"'):
                try:
                    by_result[trid].append(atts.add(aid, mime, path, url, content))
                except Problem as exc:
                    problems.append(f"llm tool result: {exc}")
        for trid, rid, name, output, call_id, error, plugin, iname, iargs in source.conn.execute(
            f'SELECT t.id, t.response_id, t.name, t.output, {source.col("tool_results", "tool_call_id", "t")}, '
            f'{source.col("tool_results", "exception", "t")}, {instance_cols} FROM tool_results t '
            f"JOIN temp._lf_want w ON w.id = t.response_id{join} ORDER BY t.id"):
            extras = None
            if iname is not None:
                extras = dumps({"llm:instance": {"plugin": plugin, "name": iname, "arguments": iargs}})
            self.results[rid].append(("user", "tool_result", output, call_id, name, None, error, None, extras))
            for att in by_result.get(trid, []):
                self.results[rid].append(("user", "attachment", None, call_id, None, None, None, att, None))


def _valid(text: Any) -> bool:
    if not isinstance(text, str):
        return False
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
