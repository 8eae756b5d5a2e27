"""Merging two databases of 100,000 responses each. Goal: <= 3 s.

Baseline, in the same run: SQLite's own `INSERT ... SELECT` of the same
responses from the attached file into an empty table with no index or triggers.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from localfirst.store import Store
from sync.merge import merge_database

from .common import sample_responses, size_mb, table

N = 100_000
GOAL_S = 3.0


def build(path: Path, seed: str) -> None:
    store = Store.open(path)
    rows = sample_responses(N, seed=seed)
    for i in range(0, N, 5000):
        store.log_many(rows[i:i + 5000])
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "a.db", Path(tmp) / "b.db"
        build(a, "a")
        build(b, "b")

        base = sqlite3.connect(Path(tmp) / "base.db", isolation_level=None)
        cols = [r[1] for r in sqlite3.connect(b).execute("PRAGMA table_info(responses)") if r[1] != "rowid"]
        base.execute(f"CREATE TABLE responses ({', '.join(cols)})")
        base.execute("ATTACH DATABASE ? AS other", [str(b)])
        start = time.perf_counter()
        base.execute("BEGIN")
        base.execute(f"INSERT INTO main.responses SELECT {', '.join(cols)} FROM other.responses")
        base.execute("COMMIT")
        base_s = time.perf_counter() - start
        base.close()

        shutil.copy(a, Path(tmp) / "a2.db")
        store = Store.open(a)
        start = time.perf_counter()
        result = merge_database(store, b)
        merge_s = time.perf_counter() - start
        start = time.perf_counter()
        again = merge_database(store, b)
        again_s = time.perf_counter() - start
        store.close()
        assert result.added["responses"] == N and again.total == 0

    print(table(f"Merging two databases of {N:,} responses each ({size_mb(b) if b.exists() else 0:.0f} MB)", [
        ("INSERT ... SELECT responses only, no indexes (baseline)", f"{base_s:.2f}", "1.0x", ""),
        ("localfirst merge (all tables, full-text index)", f"{merge_s:.2f}", f"{merge_s / base_s:.1f}x",
         f"<= {GOAL_S:.0f} s: {'met' if merge_s <= GOAL_S else 'MISSED'}"),
        ("merge again (nothing new)", f"{again_s:.2f}", f"{again_s / base_s:.1f}x", ""),
    ], ("operation", "seconds", "vs baseline", "goal")))


if __name__ == "__main__":
    main()
