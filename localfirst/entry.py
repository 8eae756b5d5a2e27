"""The ``localfirst`` command: ``logs list`` read without typer, everything else by the full CLI.

Importing typer costs more than the whole start-up goal of ``logs list -n 1``
(docs/performance.md), so this module reads the argument lists of
``logs list`` itself -- only the forms it can read exactly as typer would --
and calls the same :func:`localfirst.logs_list.list_logs` the typer command
calls. Anything else goes unchanged to :func:`localfirst.cli.main`: help, any
other command, an unknown or repeated option, a flag given a value, joined
short flags, ``--``, a value that starts with ``-`` or is empty, a count that
is not plain digits, an unreadable ``--db`` file, shell completion, and
streams whose echo typer would handle differently (Windows, ASCII streams).
So typer still writes every help text and every usage error.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing is not imported at run time: it costs start-up (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["main", "recognise"]

_VALUES = {
    "-n": "count", "--count": "count", "-q": "query", "--query": "query", "-m": "model", "--model": "model",
    "--cid": "cid", "--since": "since", "--until": "until",
}
_FLAGS = {
    "--json": "json_output", "-s": "short", "--short": "short", "-t": "truncate_text", "--truncate": "truncate_text",
    "-r": "response_only", "--response": "response_only",
}
# Longer than any count anyone types, and far inside int()'s digit limit.
_MAX_DIGITS = 30


def recognise(argv: list[str]) -> tuple[str | None, dict[str, Any]] | None:
    """``(the --db value or None, logs list's options)`` when ``argv`` runs ``logs list``
    in a form read here exactly as typer reads it; None for anything else.

    Forms: ``[--db PATH | --db=PATH] logs [list] [OPTION ...]``, each option
    at most once, ``--long=VALUE`` for options that take one.
    """
    i, db = 0, None
    if argv and argv[0] == "--db" and len(argv) > 1:
        i, db = 2, argv[1]
    elif argv and argv[0].startswith("--db="):
        i, db = 1, argv[0][len("--db="):]
    if db is not None and (not db or db.startswith("-")):
        return None
    if argv[i:i + 1] != ["logs"]:
        return None
    i += 1
    if argv[i:i + 1] == ["list"]:
        i += 1
    options: dict[str, Any] = {}
    while i < len(argv):
        name, equals, attached = argv[i].partition("=") if argv[i].startswith("--") else (argv[i], "", "")
        value: Any
        if name in _FLAGS and not equals:
            key, value = _FLAGS[name], True
            i += 1
        elif name in _VALUES:
            key = _VALUES[name]
            if equals:
                value = attached
                i += 1
            elif i + 1 < len(argv):
                value = argv[i + 1]
                i += 2
            else:
                return None
            if not value or value.startswith("-"):
                return None
            if key == "count":
                if not (value.isascii() and value.isdigit() and len(value) <= _MAX_DIGITS):
                    return None
                value = int(value)
        else:
            return None
        if key in options:
            return None
        options[key] = value
    return db, options


def _echo_as_typer(stream: Any) -> bool:
    """Whether typer's echo would write a line to ``stream`` as :func:`localfirst.running.echo` does."""
    import codecs

    if stream is None:
        return False
    try:
        ascii_ = codecs.lookup(getattr(stream, "encoding", None) or "ascii").name == "ascii"
    except LookupError:
        ascii_ = False
    return not ascii_  # typer re-encodes a stream set to ASCII as UTF-8


def _readable(db: str) -> bool:
    """False for a --db file typer refuses as unreadable (a missing one is for the store to report)."""
    try:
        os.stat(db)
    except OSError:
        return True
    return os.access(db, os.R_OK)


def main(argv: list[str] | None = None) -> int:
    """Run ``localfirst`` with ``argv`` (default: the process's arguments); returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    found = recognise(args)
    if (found is None or os.name == "nt" or os.environ.get("_LOCALFIRST_COMPLETE")
            or not (_echo_as_typer(sys.stdout) and _echo_as_typer(sys.stderr))
            or (found[0] is not None and not _readable(found[0]))):
        from .cli import main as full

        return full(args)
    return _list(*found)


def _list(db: str | None, options: dict[str, Any]) -> int:
    from pathlib import Path

    from .logs_list import list_logs
    from .running import echo, finish, open_store
    from .store import Store

    opened: list[Store] = []

    def opener() -> Store:
        opened.append(open_store(Path(db).expanduser() if db is not None else None, for_reading=True))
        return opened[-1]

    def body() -> int:
        try:
            list_logs(opener, echo=echo, **options)
        except KeyboardInterrupt:
            return 130  # what typer returns for Ctrl-C
        return 0

    def close() -> None:
        for store in opened:
            store.close()

    return finish(body, echo=echo, close=close)
