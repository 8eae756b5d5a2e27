"""Taking data out of localfirst: JSON lines, Markdown transcripts, llm's database."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ..errors import BadInput, DatabaseError
from ..records import Response
from ..store import Store
from .llm_db import LlmExport, export_llm
from .text import write_jsonl, write_markdown, write_templates

__all__ = ["FORMATS", "export", "export_llm", "ExportResult", "LlmExport"]

FORMATS = ("jsonl", "markdown", "llm")


@dataclass
class ExportResult:
    format: str
    path: str | None
    responses: int


def export(store: Store, fmt: str, *, output: str | Path | None = None, stream: TextIO | None = None,
           cid: str | None = None, since: str | None = None) -> ExportResult:
    """Export responses (all, one conversation, or those at or after ``since``).

    ``jsonl`` and ``markdown`` go to the file ``output``, else to ``stream``;
    ``llm`` needs a path.
    """
    if fmt not in FORMATS:
        raise BadInput(f"--format must be one of {', '.join(FORMATS)}")
    if fmt == "llm":
        if output is None:
            raise BadInput("--format llm writes a database: give its PATH")
        done = export_llm(store, output, cid=cid, since=since)
        return ExportResult(fmt, done.path, done.responses)
    target = Path(output).expanduser() if output is not None else None
    if target is not None and not target.parent.exists():
        raise BadInput(f"cannot write {target}: directory {target.parent} does not exist")
    responses = store.list_responses(count=0, conversation_id=cid, since=since)
    # A whole export is a backup: its templates follow the responses.
    with_templates = fmt == "jsonl" and cid is None and since is None

    def write(items: list[Response], out: TextIO) -> int:
        count = write_jsonl(items, out, store=store)
        if with_templates:
            write_templates(store, out)
        return count

    if fmt == "markdown":
        # Conversations together, each oldest first: the order a transcript reads in.
        first_seen: dict[str | None, int] = {}
        for i, r in enumerate(responses):
            first_seen.setdefault(r.conversation_id, i)
        responses.sort(key=lambda r: (first_seen[r.conversation_id], r.datetime_utc or "", r.id or ""))
        write = write_markdown  # type: ignore[assignment]
    if target is None:
        if stream is None:
            raise BadInput(f"--format {fmt} needs -o FILE or an output stream")
        return ExportResult(fmt, None, write(responses, stream))
    try:
        with target.open("w", encoding="utf-8") as out:
            count = write(responses, out)
    except OSError as exc:
        raise DatabaseError(f"cannot write {target}: {exc.strerror}") from exc
    return ExportResult(fmt, str(target), count)
