"""Sync benchmarks: bytes pushed vs copying the file, pull+apply throughput,
and the wall time of `localfirst sync` with nothing new.

    python -m bench.sync [--quick]

Each figure is printed beside a baseline measured in the same run.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sync
from localfirst.records import Part, Response
from localfirst.store import Store

from .common import installed_env, sample_responses


def _responses(n: int, *, size: int, conversations: int, cids: list[str] | None = None) -> list[Response]:
    filler = ("lorem ipsum dolor sit amet " * (size // 27 + 1))[:size]
    out = []
    for i in range(n):
        cid = cids[i % len(cids)] if cids else None
        out.append(Response(
            model="bench-model", prompt=f"question {i}: {filler[: size // 4]}", conversation_id=cid,
            parts=[Part(type="text", role="assistant", text=f"answer {i}: {filler}")],
            input_tokens=10, output_tokens=20,
        ))
    return out


def _seed(store: Store, n: int, *, size: int, conversations: int) -> None:
    first = _responses(conversations, size=size, conversations=conversations)
    store.log_many(first)
    cids = [r.conversation_id for r in first if r.conversation_id]
    done = conversations
    while done < n:
        batch = min(20_000, n - done)
        store.log_many(_responses(batch, size=size, conversations=conversations, cids=cids))
        done += batch


def bytes_per_push(root: Path, *, target_mb: int) -> tuple[int, int]:
    """(bytes uploaded by a push of 10 new responses, database file size)."""
    store = Store.open(root / "big.db")
    # ~2.5 kB of text per response, stored twice (the part and the response
    # column) plus the full-text index: ~10 kB a response on disk.
    _seed(store, target_mb * 1_000_000 // 10_000, size=2_000, conversations=200)
    sync.add_remote(store, "origin", f"file://{root}/remote-big")
    sync.push(store)
    cids = [c.id for c in store.conversations(count=10)]
    store.log_many(_responses(10, size=2_000, conversations=10, cids=cids))
    sent = sync.push(store).bytes
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = os.path.getsize(root / "big.db")
    store.close()
    return sent, size


def pull_rate(root: Path, *, n: int, mixed: bool = False) -> tuple[float, float]:
    """(responses/s pulled and applied, responses/s of SQLite copying the same rows).

    The baseline is SQLite's own ``INSERT ... SELECT`` of the same rows from
    the writer's file into an empty store: the same indexes and full-text
    index, none of the fetching, decoding and checking.

    By default every response carries a 200-character text part beside its
    text; ``mixed`` is the workload of the other benchmarks instead (one
    conversation per response, tool-call parts on one in ten).
    """
    tag = "mixed" if mixed else "parts"
    writer = Store.open(root / f"writer-{tag}.db")
    if mixed:
        for start in range(0, n, 10_000):
            writer.log_many(sample_responses(min(10_000, n - start), seed=str(start)))
    else:
        _seed(writer, n, size=200, conversations=1_000)
    sync.add_remote(writer, "origin", f"file://{root}/remote-pull-{tag}")
    sync.push(writer)
    reader = Store.open(root / f"reader-{tag}.db")
    sync.add_remote(reader, "origin", f"file://{root}/remote-pull-{tag}")
    start = time.perf_counter()
    result = sync.pull(reader)
    pulled = time.perf_counter() - start
    assert reader.conn.execute("SELECT count(*) FROM responses").fetchone()[0] == n, result
    baseline = Store.open(root / f"baseline-{tag}.db")
    writer.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    baseline.conn.execute("ATTACH DATABASE ? AS src", [str(root / f"writer-{tag}.db")])
    start = time.perf_counter()
    with baseline.write() as conn:
        for table in ("conversations", "responses", "parts"):
            cols = ", ".join(r[1] for r in conn.execute(f"PRAGMA main.table_info({table})") if r[1] != "rowid")
            conn.execute(f"INSERT INTO main.{table} ({cols}) SELECT {cols} FROM src.{table}")
    plain = time.perf_counter() - start
    for s in (writer, reader, baseline):
        s.close()
    return n / pulled, n / plain


def sync_wall_ms(root: Path, *, runs: int) -> tuple[float, float]:
    """(median ms of `localfirst sync` with nothing new via moto's server, of `localfirst logs list -n 1`)."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        env = installed_env(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                            AWS_DEFAULT_REGION="us-east-1", LOCALFIRST_HOME=str(root / "home"))
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench",
                     aws_secret_access_key="bench").create_bucket(Bucket="bench")

        def run(*args: str) -> float:
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "localfirst", *args], env=env, check=True, capture_output=True)
            return (time.perf_counter() - start) * 1000

        run("log", "-m", "m", "-p", "hi", "-r", "there")
        run("remote", "add", "origin", "s3://bench/lf", "--endpoint-url", endpoint)
        run("sync")
        run("sync")
        syncs = [run("sync") for _ in range(runs)]
        lists = [run("logs", "list", "-n", "1") for _ in range(runs)]
        return statistics.median(syncs), statistics.median(lists)
    finally:
        server.stop()


def main() -> None:
    quick = "--quick" in sys.argv
    with tempfile.TemporaryDirectory(prefix="lf-bench-sync-") as tmp:
        root = Path(tmp)
        sent, size = bytes_per_push(root, target_mb=5 if quick else 50)
        rate, plain = pull_rate(root, n=10_000 if quick else 100_000)
        mixed_rate, mixed_plain = pull_rate(root, n=10_000 if quick else 100_000, mixed=True)
        wall, startup = sync_wall_ms(root, runs=3 if quick else 7)
    rows = [
        ("push of 10 new responses: bytes uploaded", f"{sent:,}", f"copy the db file: {size:,}",
         f"1/{size // max(sent, 1):,}", "<= 1/10,000"),
        ("pull + apply: responses/s, each with a text part", f"{rate:,.0f}",
         f"INSERT ... SELECT of the same rows: {plain:,.0f}", f"{rate / plain:.2f}x", ">= 20,000/s"),
        ("pull + apply: responses/s, tool calls on 1 in 10", f"{mixed_rate:,.0f}",
         f"INSERT ... SELECT of the same rows: {mixed_plain:,.0f}", f"{mixed_rate / mixed_plain:.2f}x",
         ">= 20,000/s"),
        ("`localfirst sync`, nothing new, local moto: ms", f"{wall:.0f}", f"`logs list -n 1`: {startup:.0f}",
         f"{wall / startup:.1f}x", "<= 400 ms"),
    ]
    header = ("measure", "value", "baseline (same run)", "ratio", "goal")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print("\n### Sync\n")
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")


if __name__ == "__main__":
    main()
