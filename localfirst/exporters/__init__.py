"""Taking data out of localfirst: JSON lines, Markdown transcripts, llm's database."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ..errors import BadInput, DatabaseError, LocalFirstError
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
    if target is None and stream is None:
        raise BadInput(f"--format {fmt} needs -o FILE or an output stream")
    # A whole export is a backup: its templates follow the responses.
    with_templates = fmt == "jsonl" and cid is None and since is None

    def write_backup(items: Iterable[Response], out: TextIO) -> int:
        count = write_jsonl(items, out, store=store)
        if with_templates:
            write_templates(store, out)
        return count

    # Markdown: conversations together, each oldest first, the order a transcript reads in.
    write = write_markdown if fmt == "markdown" else write_backup
    with closing(store.stream_responses(count=0, conversation_id=cid, since=since,
                                        by_conversation=fmt == "markdown")) as responses:
        if target is None:
            assert stream is not None
            try:
                return ExportResult(fmt, None, write(responses, stream))
            except BrokenPipeError:
                raise
            except OSError as exc:  # a full disk under a redirect
                raise LocalFirstError(f"cannot write the output: {exc.strerror or exc}") from exc
        return ExportResult(fmt, str(target), _to_file(target, lambda out: write(responses, out)))


def _to_file(target: Path, write: Callable[[TextIO], int]) -> int:
    """Write through a temporary file beside ``target``, renamed over it once complete.

    A full disk or an interruption leaves no half-written file, and an
    older file of that name stays as it was.
    """
    partial = target.with_name(f".{target.name}.partial")
    try:
        with partial.open("w", encoding="utf-8") as out:
            count = write(out)
        os.replace(partial, target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise DatabaseError(f"cannot write {target}: {exc.strerror or exc}") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return count
