"""Logging 100,000 responses through the Python API. Goal: >= 20,000 responses/s.

Baseline, in the same run: a bare `executemany` of the same response rows into a
table of the same shape with no index, no full-text index and no parts.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from pathlib import Path

from localfirst.store import RESPONSE_COLUMNS, Store

from .common import prose_responses, sample_responses, table

N = 100_000
GOAL = 20_000


def main() -> None:
    responses = sample_responses(N)
    with tempfile.TemporaryDirectory() as tmp:
        base_db = sqlite3.connect(Path(tmp) / "baseline.db", isolation_level=None)
        base_db.execute("PRAGMA journal_mode = WAL")
        base_db.execute(f"CREATE TABLE responses ({', '.join(RESPONSE_COLUMNS)})")
        rows = [(f"id{i}", "c", r.model, None, r.prompt, None, None, '{"temperature": 0.1}', r.response, None,
                 None, 40, 60, None, None, "2026-01-01T00:00:00.000000Z", None, 0, None)
                for i, r in enumerate(responses)]
        start = time.perf_counter()
        base_db.execute("BEGIN")
        base_db.executemany(f"INSERT INTO responses VALUES ({', '.join('?' * len(RESPONSE_COLUMNS))})", rows)
        base_db.execute("COMMIT")
        base_s = time.perf_counter() - start

        store = Store.open(Path(tmp) / "logs.db")
        start = time.perf_counter()
        for i in range(0, N, 1000):
            store.log_many(responses[i:i + 1000])
        batch_s = time.perf_counter() - start

        prose = prose_responses(N)
        store2 = Store.open(Path(tmp) / "prose.db")
        start = time.perf_counter()
        for i in range(0, N, 1000):
            store2.log_many(prose[i:i + 1000])
        prose_s = time.perf_counter() - start
        store2.close()

        single = sample_responses(5000, seed="single")
        start = time.perf_counter()
        for r in single:
            store.log(r)
        single_s = time.perf_counter() - start
        store.close()

    rate = lambda n, s: f"{n / s:,.0f}"  # noqa: E731
    print(table(f"Logging {N:,} responses (10% with tool-call parts)", [
        ("bare executemany, no indexes (baseline)", f"{base_s:.2f}", rate(N, base_s), "1.0x", ""),
        ("Store.log_many, 1,000 per transaction", f"{batch_s:.2f}", rate(N, batch_s), f"{batch_s / base_s:.1f}x",
         f">= {GOAL:,}/s: {'met' if N / batch_s >= GOAL else 'MISSED'}"),
        ("Store.log_many, prose-like text (Zipf, 20,000 words)", f"{prose_s:.2f}", rate(N, prose_s),
         f"{prose_s / base_s:.1f}x", f">= {GOAL:,}/s: {'met' if N / prose_s >= GOAL else 'MISSED'}"),
        ("Store.log, one transaction each (5,000)", f"{single_s:.2f}", rate(5000, single_s),
         f"{(single_s / 5000) / (base_s / N):.1f}x per row", ""),
    ], ("method", "seconds", "responses/s", "vs baseline", "goal")))


if __name__ == "__main__":
    main()
