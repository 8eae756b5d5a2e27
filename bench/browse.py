"""Serving, the transcript page, and a JSON-lines backup and restore.

- `serve` from start to the first page answered (a real process, real HTTP);
  baseline in the same run: `python -c "import datasette.app"` (what Datasette
  alone costs to import) as a ratio.
- The transcript page of a 500-turn conversation: render time in process and
  over HTTP through Datasette.
- `export --format jsonl` then `import jsonl` into an empty home for 100,000
  responses, against `sqlite3 .dump | sqlite3` of the same file (the sqlite3
  shell, run side by side in the same run).

`python -m bench browse [--responses N]`
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from localfirst.db import connect
from localfirst.exporters import export
from localfirst.records import Part
from localfirst.restore import import_jsonl
from localfirst.store import Store

from .common import installed_env, median_ms, sample_responses, size_mb, table


def _first_page_ms(db: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "localfirst", "--db", str(db), "serve"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        import httpx

        while True:
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.01)
        return (time.perf_counter() - start) * 1000
    finally:
        proc.terminate()
        proc.wait()


def bench_serve(tmp: Path) -> str:
    db = tmp / "serve.db"
    store = Store.open(db)
    store.log_many(sample_responses(1000))
    store.close()
    env = installed_env()
    serve = sorted(_first_page_ms(db, env) for _ in range(5))[2]
    base = median_ms(lambda: subprocess.run([sys.executable, "-c", "import datasette.app"], env=env, check=True),
                     runs=5)
    return table("serve: start to first page (1,000 responses; median of 5)", [
        ("localfirst serve, until / answers", f"{serve:.0f}", f"{serve / base:.2f}x"),
        ("baseline: python -c 'import datasette.app'", f"{base:.0f}", "1.00x"),
    ], ("what", "ms", "vs baseline"))


def bench_page(tmp: Path) -> str:
    import asyncio

    from localfirst.web import make_datasette
    from localfirst.web.plugin import _render

    db = tmp / "page.db"
    store = Store.open(db)
    turns = sample_responses(500)
    first = turns[0]
    store.log(first)
    for r in turns[1:]:
        r.conversation_id = first.conversation_id
        r.parts.insert(0, Part(type="reasoning", text="thinking **about** it\n\n- one\n- two"))
    store.log_many(turns[1:])
    store.close()
    cid = first.conversation_id or ""
    render = median_ms(lambda: _render(str(db), "page", cid), runs=9)
    client = make_datasette(db).client

    async def fetch() -> int:
        page = await client.get(f"/-/conversation/{cid}")
        return len(page.content)

    size = asyncio.run(fetch())
    http = median_ms(lambda: asyncio.run(fetch()), runs=9)
    return table("Transcript page of a 500-turn conversation (median of 9)", [
        ("read + render (in process)", f"{render:.0f}", f"{size / 1e6:.1f} MB of HTML"),
        ("through Datasette's ASGI app", f"{http:.0f}", ""),
    ], ("what", "ms", "note"))


def bench_jsonl(tmp: Path, n: int) -> str:
    src = tmp / "src.db"
    store = Store.open(src)
    rows = sample_responses(n)
    for i in range(0, n, 5000):
        store.log_many(rows[i:i + 5000])
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    start = time.perf_counter()
    buf = io.StringIO()
    export(store, "jsonl", stream=buf)
    export_s = time.perf_counter() - start
    store.close()
    dst = Store(connect(tmp / "dst.db"), path=str(tmp / "dst.db"))
    start = time.perf_counter()
    import_jsonl(dst, io.StringIO(buf.getvalue()))
    import_s = time.perf_counter() - start
    dst.close()
    sqlite3_cli = shutil.which("sqlite3")
    rows_out = [
        ("export --format jsonl", f"{export_s:.2f}", f"{n / export_s:,.0f}", ""),
        ("import jsonl (empty home)", f"{import_s:.2f}", f"{n / import_s:,.0f}", ""),
        ("export + import", f"{export_s + import_s:.2f}", f"{n / (export_s + import_s):,.0f}", ""),
    ]
    if sqlite3_cli:
        target = tmp / "dump.db"
        start = time.perf_counter()
        subprocess.run(f"{sqlite3_cli} {src} .dump | {sqlite3_cli} {target}", shell=True, check=True)
        base_s = time.perf_counter() - start
        rows_out[2] = (*rows_out[2][:3], f"{(export_s + import_s) / base_s:.2f}x")
        rows_out.append(("baseline: sqlite3 .dump | sqlite3", f"{base_s:.2f}", f"{n / base_s:,.0f}", "1.00x"))
    else:
        rows_out.append(("baseline: sqlite3 .dump | sqlite3", "no sqlite3 shell", "", ""))
    return table(f"Backup as JSON lines and restore, {n:,} responses ({size_mb(src):.0f} MB file, "
                 f"{len(buf.getvalue()) / 1e6:.0f} MB of JSON)", rows_out, ("what", "s", "responses/s", "vs baseline"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--responses", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        print(bench_serve(tmp))
        print(bench_page(tmp))
        print(bench_jsonl(tmp, args.responses))


if __name__ == "__main__":
    main()
