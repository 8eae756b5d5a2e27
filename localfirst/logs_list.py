"""``logs list``: the one body behind the typer command and the typer-free start.

:mod:`localfirst.cli` and :mod:`localfirst.entry` parse the options their own
way and both call :func:`list_logs`, so the checks, the errors and the output
cannot drift apart. Nothing here imports typer.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing

from .errors import BadInput
from .running import write, writing
from .store import Store

TYPE_CHECKING = False  # typing is not imported at run time: it costs start-up (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any

    from .running import Echo

__all__ = ["MAX_COUNT", "check_count", "list_logs"]

# SQLite's LIMIT takes a 64-bit integer. Checked here, not given to typer as
# max=, which would print the number in every --help.
MAX_COUNT = 2**62


def check_count(count: int) -> None:
    if count > MAX_COUNT:
        raise BadInput(f"--count {count} is too large (0 lists them all)")


def _is_text(value: str) -> bool:
    """False for an argument holding bytes that are not UTF-8 (Python keeps them as lone surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def list_logs(
    open_store: Callable[[], Store],
    *,
    echo: Echo,
    count: int = 3,
    query: str | None = None,
    model: str | None = None,
    cid: str | None = None,
    since: str | None = None,
    until: str | None = None,
    json_output: bool = False,
    short: bool = False,
    truncate_text: bool = False,
    response_only: bool = False,
) -> None:
    """List logged responses, latest last, to stdout (the options are ``logs list``'s).

    ``open_store`` is called once the count is checked; ``echo`` writes the
    one line of ``--response``.
    """
    from . import render
    from .timeutil import parse_when

    check_count(count)
    for option, value in (("--query", query), ("--model", model), ("--cid", cid), ("--since", since),
                          ("--until", until)):
        if value is not None and not _is_text(value):
            raise BadInput(f"{option} {value!r} is not UTF-8 text: set the terminal's encoding to UTF-8")
    store = open_store()
    filters: dict[str, Any] = dict(
        query=query, model=model, conversation_id=cid,
        since=parse_when(since, option="--since") if since else None,
        until=parse_when(until, end_of_day=True, option="--until") if until else None,
    )
    if response_only:
        found = store.list_responses(count=1, **filters)
        if found:
            with writing():
                echo(found[-1].response or "")
        return
    with closing(store.stream_responses(count=count, **filters)) as responses:
        if json_output:
            write(render.json_array(r.to_json() for r in responses), end="\n")
        elif short:
            write(render.short_lines(responses), sep="\n", end="\n", always=True)
        else:
            write(render.markdown_blocks(responses, truncate_text=truncate_text), sep="\n\n", end="\n")
