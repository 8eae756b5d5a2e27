"""What every run of the command line shares, parsed by typer or not.

The full CLI (:mod:`localfirst.cli`) and the typer-free start of ``logs list``
(:mod:`localfirst.entry`) open their store, write their output and end on an
error through these functions, so both behave alike. Nothing here imports
typer.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from . import paths
from .errors import LocalFirstError
from .store import Store

__all__ = ["echo", "open_store", "write", "writing", "silence_stdout", "finish"]


TYPE_CHECKING = False  # typing is not imported at run time: it costs start-up (docs/performance.md)
if TYPE_CHECKING:
    from typing import Protocol

    class Echo(Protocol):
        """A line writer with typer.echo's signature: ``message`` and a newline, to stderr with ``err``."""

        def __call__(self, message: str, *, err: bool = False) -> None: ...


# click (inside typer) removes these from echoed text when the stream is not
# a terminal; the same pattern, so that a line reads the same either way.
_ANSI = re.compile(r"\033\[[;?0-9]*[a-zA-Z]")


def echo(message: str, *, err: bool = False) -> None:
    """typer.echo for a line of text on a POSIX system whose streams are not ASCII.

    Escape sequences are stripped when the stream is not a terminal, as
    typer's echo does; :mod:`localfirst.entry` uses this one only where that
    is all typer's would do (elsewhere it runs the full CLI).
    """
    stream = sys.stderr if err else sys.stdout
    try:
        terminal = stream.isatty()
    except Exception:  # click's rule: a stream that cannot tell is not a terminal
        terminal = False
    stream.write((message if terminal else _ANSI.sub("", message)) + "\n")
    stream.flush()


def open_store(db: Path | None, *, for_reading: bool = False) -> Store:
    """The store of a run: the file ``--db`` named, or ``logs.db`` in the home.

    ``for_reading``: the command only reads, so nothing is created or written
    (a database not made yet in the home reads as empty; a file named by --db
    must exist), and a file that cannot be written is read as it is.
    """
    if db is None:
        paths.ensure_home(create=not for_reading)
    return Store.open(db if db is not None else paths.default_db_path(),
                      create=db is None or not for_reading, for_reading=for_reading)


def write(chunks: Iterable[str], *, sep: str = "", end: str = "", always: bool = False) -> None:
    """Write ``chunks`` to stdout as they come, ``sep`` between them and ``end`` after (when any, or ``always``)."""
    out = sys.stdout
    wrote = False
    with writing():
        for chunk in chunks:
            out.write(sep + chunk if wrote else chunk)
            wrote = True
        if wrote or always:
            out.write(end)
        out.flush()


@contextmanager
def writing() -> Iterator[None]:
    """Output that cannot be written, as one message: a full disk under a redirect, or a
    stream whose encoding cannot hold the text. A reader that went away stays a BrokenPipeError."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise LocalFirstError(f"cannot write the output: {exc.strerror or exc}") from exc
    except UnicodeEncodeError as exc:
        raise LocalFirstError(
            f"cannot write the output: its encoding ({exc.encoding}) cannot hold "
            f"{exc.object[exc.start:exc.end]!r}; set PYTHONIOENCODING=utf-8") from exc


def silence_stdout() -> None:
    """Point stdout at the null device, so nothing more is flushed into a pipe whose reader left."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def finish(body: Callable[[], int], *, echo: Echo, close: Callable[[], None]) -> int:
    """Run one command and return its exit code; the one place where errors become messages.

    A :class:`LocalFirstError` becomes one ``Error: ...`` line on stderr and
    its exit code; a reader that went away (``| head``) ends the run quietly
    with 1; ``close`` runs whatever happens. Anything else is a bug and stays
    a traceback.
    """
    try:
        return body()
    except LocalFirstError as exc:
        echo("Error: " + " ".join(str(exc).split()), err=True)
        return exc.exit_code
    except BrokenPipeError:
        # Nothing more to say, and nothing left for Python to flush into the
        # closed pipe at exit.
        silence_stdout()
        return 1
    finally:
        close()
