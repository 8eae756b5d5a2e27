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


def _table(title: str, rows: list[tuple[str, float]]) -> None:
    base = rows[0][1]
    print(f"\n{title}")
    print(f"{'':48} {'median ms':>10} {'x baseline':>11}")
    for name, ms in rows:
        print(f"{name:48} {ms:10.2f} {ms / base:11.2f}")


def end_to_end(runs: int, home: Path) -> None:
    env = {**os.environ, "LOCALFIRST_HOME": str(home)}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    lf = [sys.executable, "-m", "localfirst"]
    subprocess.run([*lf, "models", "add", "bench", "--base-url", f"http://127.0.0.1:{server.server_address[1]}/v1",
                    "--model", "bench"], env=env, check=True, capture_output=True)

    def call(args: list[str]) -> Callable[[], None]:
        return lambda: subprocess.run(args, env=env, check=True, capture_output=True, stdin=subprocess.DEVNULL)

    rows = [
        ("python -c pass (baseline)", _median_ms(call([sys.executable, "-c", "pass"]), runs)),
        ("localfirst prompt -m echo hi", _median_ms(call([*lf, "prompt", "-m", "echo", "hi"]), runs)),
        ("localfirst prompt -m echo --no-log hi", _median_ms(call([*lf, "prompt", "-m", "echo", "--no-log", "hi"]),
                                                              runs)),
        ("localfirst prompt -m bench hi (100 SSE tokens)", _median_ms(call([*lf, "prompt", "-m", "bench", "hi"]),
                                                                       runs)),
    ]
    server.shutdown()
    _table("End to end (separate processes)", rows)


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

    reading = _median_ms(read, runs * 5)
    both = _median_ms(read_and_log, runs * 5)
    store.close()
    _table("One streamed response of 100 chunks (in process)", [
        ("read chunks into a Response (baseline)", reading),
        ("read, then Store.log to a database file", both),
        ("  logging alone (difference)", both - reading),
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
