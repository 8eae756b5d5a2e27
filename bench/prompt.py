"""How fast is `localfirst prompt`, and what does logging a streamed response cost?

    .venv/bin/python bench/prompt.py [--runs N]

Prints three tables, each with a baseline measured in the same run:

1. End to end, as separate processes: `python -c pass` (the floor), then
   `localfirst prompt -m echo hi` (goal: median <= 120 ms), then a prompt to a
   local chat-completions server streaming 100 tokens (adds httpx).
2. Logging one streamed response (100 chunks read into a Response, then
   Store.log on a database file) against the chunk reading alone (goal: the
   logging itself <= 5 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def _chunks(n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"id": "c1", "model": "bench-1", "choices": [{"index": 0, "delta": {"content": f"token{i} "}}]}
        for i in range(n)
    ]
    out.append({"id": "c1", "model": "bench-1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    out.append({"id": "c1", "model": "bench-1", "choices": [],
                "usage": {"prompt_tokens": 12, "completion_tokens": n, "total_tokens": n + 12}})
    return out


def _stream_bytes(n: int) -> bytes:
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in _chunks(n)) + b"data: [DONE]\n\n"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    payload = _stream_bytes(100)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.wfile.write(self.payload)


def _median_ms(fn: Callable[[], None], runs: int) -> float:
    fn()  # warm the page cache and the database
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _table(title: str, rows: list[tuple[str, float, str]]) -> None:
    """A Markdown table; the first row is the baseline the others are compared with."""
    base = rows[0][1]
    cells = [("what", "median ms", "vs baseline", "goal")]
    cells += [(name, f"{ms:.2f}", f"{ms / base:.2f}x", goal) for name, ms, goal in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(4)]

    def line(r: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"

    print(f"\n### {title}\n")
    print(line(cells[0]))
    print("| " + " | ".join("-" * w for w in widths) + " |")
    for r in cells[1:]:
        print(line(r))


def _goal(ms: float, limit: float) -> str:
    return f"<= {limit:g} ms: {'met' if ms <= limit else 'MISSED'}"


def end_to_end(runs: int, home: Path) -> None:
    env = {**os.environ, "LOCALFIRST_HOME": str(home)}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    lf = [sys.executable, "-m", "localfirst"]
    subprocess.run([*lf, "models", "add", "bench", "--base-url", f"http://127.0.0.1:{server.server_address[1]}/v1",
                    "--model", "bench"], env=env, check=True, capture_output=True)

    def call(args: list[str]) -> Callable[[], None]:
        return lambda: subprocess.run(args, env=env, check=True, capture_output=True, stdin=subprocess.DEVNULL)

    echo = _median_ms(call([*lf, "prompt", "-m", "echo", "hi"]), runs)
    rows = [
        ("python -c pass (baseline)", _median_ms(call([sys.executable, "-c", "pass"]), runs), ""),
        ("localfirst prompt -m echo hi", echo, _goal(echo, 120)),
        ("localfirst prompt -m echo --no-log hi",
         _median_ms(call([*lf, "prompt", "-m", "echo", "--no-log", "hi"]), runs), ""),
        ("localfirst prompt -m local hi (100 SSE tokens, httpx)",
         _median_ms(call([*lf, "prompt", "-m", "bench", "hi"]), runs), ""),
    ]
    server.shutdown()
    _table(f"End to end, separate processes (median of {runs} runs)", rows)


def logging_overhead(runs: int, home: Path) -> None:
    from localfirst.models.chat import ChatReader
    from localfirst.store import Store

    chunks = _chunks(100)
    store = Store.open(home / "bench-logging.db")

    def read() -> Any:
        reader = ChatReader()
        for c in chunks:
            reader.feed(c)
        response = reader.response(model="bench")
        response.prompt = "hi"
        return response

    def read_and_log() -> None:
        store.log(read())

    def open_log_close() -> None:
        # What one `localfirst prompt` pays: open the file, log, close (a WAL checkpoint).
        other = Store.open(home / "bench-logging.db")
        other.log(read())
        other.close()

    reading = _median_ms(read, runs * 5)
    both = _median_ms(read_and_log, runs * 5)
    store.close()
    whole = _median_ms(open_log_close, runs * 5)
    _table(f"One streamed response of 100 chunks, in process (median of {runs * 5} runs)", [
        ("read chunks into a Response (baseline)", reading, ""),
        ("read, then Store.log to a database file", both, ""),
        ("logging alone (the difference)", both - reading, _goal(both - reading, 5)),
        ("read, then open the store, log and close it", whole, _goal(whole - reading, 5)),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        end_to_end(args.runs, Path(tmp))
        logging_overhead(args.runs, Path(tmp))


if __name__ == "__main__":
    main()
