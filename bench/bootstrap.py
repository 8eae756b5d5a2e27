"""A new machine on a real network: bootstrap by replay, by concurrent replay, and from a snapshot.

    python -m bench.bootstrap [--quick]

moto's S3 server runs on 127.0.0.1 behind a small HTTP proxy that holds every
request 30 ms (a real region's round trip). Three hosts push a history of
3,000 changesets (~100,000 responses; --quick: 300 and ~10,000). Then a new
machine pulls it, side by side in one run:

  (a) replaying every changeset one GET after another, as before snapshots;
  (b) replaying with up to 8 GETs in flight;
  (c) from a snapshot plus a tail of 20 changesets;
  (d) the baseline: one GET of a database file holding the same history.

It also times `compact` on that history and counts an idle `sync` after it.
"""

from __future__ import annotations

import http.client
import os
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import sync
from localfirst.records import Part, Response
from localfirst.store import Store
from sync import receive, snapshot

DELAY = 0.030


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proxy(target_port: int) -> tuple[ThreadingHTTPServer, int]:
    """An HTTP proxy on 127.0.0.1 that waits DELAY before passing each request on."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _relay(self) -> None:
            time.sleep(DELAY)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            upstream = http.client.HTTPConnection("127.0.0.1", target_port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
            upstream.request(self.command, self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
            self.send_response(answer.status, answer.reason)
            for k, v in answer.getheaders():
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            upstream.close()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

        def log_message(self, *args: object) -> None:
            pass

    port = _free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, port


def _history(root: Path, url: str, endpoint: str, *, changesets: int, per: int) -> list[Store]:
    hosts = []
    for h in range(3):
        store = Store.open(root / f"host{h}.db")
        sync.add_remote(store, "origin", url, endpoint_url=endpoint)
        hosts.append(store)
    text = ("a sentence of ordinary prose about databases, clocks and networks. " * 16)[:1100]
    for i in range(changesets // 3):
        for h, store in enumerate(hosts):
            store.log_many([Response(model="m", prompt=f"q {h} {i} {k}", parts=[Part(type="text", text=text)])
                            for k in range(per)])
            sync.push(store)
    return hosts


def _fresh(root: Path, name: str, url: str, endpoint: str) -> tuple[float, int, int]:
    store = Store.open(root / f"{name}.db")
    sync.add_remote(store, "origin", url, endpoint_url=endpoint)
    start = time.perf_counter()
    got = sync.pull(store)
    took = time.perf_counter() - start
    count = store.conn.execute("SELECT count(*) FROM responses").fetchone()[0]
    store.close()
    return took, got.requests, count


def main() -> None:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    quick = "--quick" in sys.argv
    total = 300 if quick else 3000
    per = 33
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"})
    port = _free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    proxy, proxy_port = _proxy(port)
    direct, slow = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{proxy_port}"
    import boto3

    boto3.client("s3", endpoint_url=direct).create_bucket(Bucket="bench")
    url = "s3://bench/lf"
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="lf-bench-boot-") as tmp:
            root = Path(tmp)
            hosts = _history(root, url, direct, changesets=total, per=per)
            window = snapshot.FETCH_WINDOW
            snapshot.FETCH_WINDOW = 1
            receive.BOOTSTRAP_AFTER = 10**9
            a = _fresh(root, "sequential", url, slow)
            snapshot.FETCH_WINDOW = window
            b = _fresh(root, "concurrent", url, slow)
            receive.BOOTSTRAP_AFTER = 20
            compactor = Store.open(root / "compactor.db")
            sync.add_remote(compactor, "origin", url, endpoint_url=slow)
            start = time.perf_counter()
            made = sync.compact(compactor)  # the default margin: nothing is deleted yet
            compact_s = time.perf_counter() - start
            for i in range(7):  # a tail of about 20 changesets
                for store in hosts:
                    store.log_many([Response(model="m", prompt=f"tail {i}", parts=[Part(type="text", text="t")])])
                    sync.push(store)
            c = _fresh(root, "snapshot", url, slow)
            db = root / "snapshot.db"
            data = db.read_bytes()
            boto3.client("s3", endpoint_url=direct).put_object(Bucket="bench", Key="copy/logs.db", Body=data)
            start = time.perf_counter()
            answer = boto3.client("s3", endpoint_url=slow).get_object(Bucket="bench", Key="copy/logs.db")
            fetched = answer["Body"].read()
            d_s = time.perf_counter() - start
            assert len(fetched) == len(data)
            idle = sync.sync(compactor)
            idle = sync.sync(compactor)
            rows = [
                ("(a) replay, one GET after another", a),
                ("(b) replay, 8 GETs in flight", b),
                ("(c) snapshot + tail of 21 changesets", c),
            ]
            print(f"\n### Bootstrap of {total:,} changesets from 3 hosts ({total * per:,} responses), "
                  f"{DELAY * 1000:.0f} ms a request\n")
            print("| how | seconds | requests | responses | vs (d) |")
            print("| --- | --- | --- | --- | --- |")
            for name, (secs, reqs, count) in rows:
                print(f"| {name} | {secs:.1f} | {reqs:,} | {count:,} | {secs / d_s:.1f}x |")
            print(f"| (d) one GET of the database file ({len(data) / 1e6:.0f} MB) | {d_s:.1f} | 1 | | 1.0x |")
            print(f"\n(c) is {a[0] / c[0]:.1f}x faster than (a), (b) {a[0] / b[0]:.1f}x.\n")
            print("| compact | seconds | requests | bytes written | objects deleted |")
            print("| --- | --- | --- | --- | --- |")
            print(f"| margin 7 days | {compact_s:.1f} | {made.requests:,} | {made.bytes_written:,} | "
                  f"{len(made.deleted)} |")
            print(f"\nIdle `sync` after the compaction: {idle.requests} request.")
            for s in (*hosts, compactor):
                s.close()
    finally:
        proxy.shutdown()
        moto.stop()


if __name__ == "__main__":
    main()
