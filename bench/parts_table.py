"""What a part of prose costs on disk: the `parts` table before `m070_parts` (WITHOUT ROWID) and after.

    python -m bench.parts_table

The same 40,000 parts of N bytes of text are written, in transactions of
3,300 as a pull writes them, into the old and the new shape of the table
(SQLite's default 4 KiB pages), side by side in one run: the time to write
them, and the size of the file against the size of the text.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from pathlib import Path

from .common import table

COLUMNS = ("response_id TEXT NOT NULL, ordinal INTEGER NOT NULL, role TEXT NOT NULL, type TEXT NOT NULL, "
           "text TEXT, tool_call_id TEXT, tool_name TEXT, arguments_json TEXT, error TEXT, attachment_id TEXT, "
           "extras TEXT, PRIMARY KEY (response_id, ordinal)")
PROSE = "a sentence of ordinary prose about databases, clocks and networks. " * 300
COUNT = 40_000


def write(path: Path, shape: str, size: int) -> tuple[float, int]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(f"CREATE TABLE parts ({COLUMNS}) {shape}")
    rows = [(f"01J{i:023d}", 1, "assistant", "text", PROSE[:size]) for i in range(COUNT)]
    start = time.perf_counter()
    for k in range(0, COUNT, 3300):
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO parts (response_id, ordinal, role, type, text) VALUES (?, ?, ?, ?, ?)",
                         rows[k:k + 3300])
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    took = time.perf_counter() - start
    conn.close()
    return took, path.stat().st_size


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="lf-bench-parts-") as tmp:
        for size in (300, 1100, 2500, 5000, 12000):
            old_s, old_b = write(Path(tmp) / f"old-{size}.db", "WITHOUT ROWID", size)
            new_s, new_b = write(Path(tmp) / f"new-{size}.db", "", size)
            text = COUNT * size
            rows.append((f"{size:,} bytes", f"{old_s:.2f} s", f"{old_b / text:.2f}x", f"{new_s:.2f} s",
                         f"{new_b / text:.2f}x", f"{old_s / new_s:.1f}x", f"{old_b / new_b:.1f}x"))
    print(table(f"{COUNT:,} parts, WITHOUT ROWID (before m070_parts) and an ordinary table (after)", rows,
                ("text of a part", "before: write", "file / text", "after: write", "file / text",
                 "write: before / after", "file: before / after")))


if __name__ == "__main__":
    main()
