"""Small assertions shared by CLI tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def assert_one_line_error(result, *fragments: str | None) -> None:
    """A user's mistake: non-zero exit, one `Error: ...` line naming each fragment, no traceback."""
    assert result.code != 0 if hasattr(result, "code") else result.returncode != 0
    err = result.err if hasattr(result, "err") else result.stderr
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("Error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        if fragment is not None:
            assert fragment in lines[0], lines[0]


def dump(path: Path) -> list[str]:
    """Every row of every table, to compare a database before and after."""
    if not Path(path).exists():
        return []
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def db_state() -> list[str]:
    """Every row of the database in the home, to prove a failure changed nothing."""
    from localfirst import paths

    return dump(paths.default_db_path())
