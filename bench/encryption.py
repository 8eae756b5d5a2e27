"""What end-to-end encryption costs: push, pull and bootstrap through a folder remote, plain vs encrypted.

    python -m bench.encryption [--n 100000] [--runs 3]     (or LOCALFIRST_BENCH_N=...)

One machine logs N responses (~1.1 KB of prose each, in a text part) and
pushes them all; a second machine adds the remote and pulls everything by
replaying the changesets; then the first compacts with margin 0 and a third,
new machine pulls, starting from the snapshot (BOOTSTRAP_AFTER is set to 0
for it, so that it does at any N; at 100,000 the push makes 60 changesets and
the default of 20 behind does the same). The same is done against a plain
remote and an encrypted one (scrypt N=2^14 for the creator, so that creating
and joining stay cheap here), side by side in one run: the runs alternate
plain and encrypted and each figure is the median of ``--runs``, since the
machine is noisy. Building the stores is not timed.

Each machine has a LOCALFIRST_HOME of its own in a temporary folder (the key
files of encrypted remotes live there).

It also times the passphrase key derivation once at the default parameters
(scrypt N=2^17, r=8, p=1), which runs when a remote is added (created or
joined) and when its passphrase changes, never on a push, pull or sync.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import sync
from localfirst.records import Part, Response
from localfirst.store import Store
from sync import crypto, receive

from .common import table

PASSPHRASE = "some long passphrase"
TEXT_CHARS = 1100
BATCH = 20_000
T = TypeVar("T")


def _texts(n: int, *, seed: int = 11) -> list[str]:
    """~1.1 KB of prose each: words of a 20,000-word vocabulary drawn with Zipf's law."""
    rng = random.Random(seed)
    vocab = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
             for _ in range(20_000)]
    cum: list[float] = []
    total = 0.0
    for i in range(len(vocab)):
        total += 1 / (i + 1)
        cum.append(total)
    out = []
    for _ in range(n):
        text = " ".join(rng.choices(vocab, cum_weights=cum, k=TEXT_CHARS // 4))
        out.append(text[:text.rfind(" ", 0, TEXT_CHARS)] + ".")
    return out


@contextmanager
def _home(path: Path) -> Iterator[None]:
    """LOCALFIRST_HOME of one machine, for the calls made inside."""
    before = os.environ.get("LOCALFIRST_HOME")
    path.mkdir(parents=True, exist_ok=True)
    os.environ["LOCALFIRST_HOME"] = str(path)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("LOCALFIRST_HOME", None)
        else:
            os.environ["LOCALFIRST_HOME"] = before


def _count(store: Store) -> int:
    return int(store.conn.execute("SELECT count(*) FROM responses").fetchone()[0])


def _folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _timed(fn: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def one_run(root: Path, texts: list[str], *, encrypted: bool) -> dict[str, float]:
    """Seconds of push, pull, compact and bootstrap of len(texts) responses, and the remote's size."""
    n = len(texts)
    remote = root / "remote"
    url = f"file://{remote}"
    joiner = PASSPHRASE if encrypted else None  # the join does one scrypt derivation (N=2^14)
    out: dict[str, float] = {}
    with _home(root / "home-a"):
        writer = Store.open(root / "a.db")
        for start in range(0, n, BATCH):
            writer.log_many([Response(model="bench-model", prompt=f"question {i}",
                                      parts=[Part(type="text", text=texts[i])])
                             for i in range(start, min(n, start + BATCH))])
        writer.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        if encrypted:
            sync.add_remote(writer, "origin", url, encrypt=True, passphrase=PASSPHRASE, scrypt_n=1 << 14)
        else:
            sync.add_remote(writer, "origin", url)
        out["push"], _ = _timed(lambda: sync.push(writer))
        out["remote_bytes"] = _folder_bytes(remote)
    with _home(root / "home-b"):
        reader = Store.open(root / "b.db")
        sync.add_remote(reader, "origin", url, passphrase=joiner)
        out["pull"], got = _timed(lambda: sync.pull(reader))
        assert got.snapshot is None and _count(reader) == n, got
        reader.close()
    with _home(root / "home-a"):
        out["compact"], _ = _timed(lambda: sync.compact(writer, margin=0))
        writer.close()
    with _home(root / "home-c"):
        fresh = Store.open(root / "c.db")
        sync.add_remote(fresh, "origin", url, passphrase=joiner)
        after, receive.BOOTSTRAP_AFTER = receive.BOOTSTRAP_AFTER, 0  # from the snapshot at any N
        try:
            out["bootstrap"], got = _timed(lambda: sync.pull(fresh))
        finally:
            receive.BOOTSTRAP_AFTER = after
        assert got.snapshot is not None and _count(fresh) == n, got
        fresh.close()
    return out


def kdf_seconds(runs: int) -> float:
    """Median seconds of one passphrase key derivation at the default scrypt parameters."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        crypto.passphrase_kek("x" * 20, crypto.Scrypt_(os.urandom(16)))
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=int(os.environ.get("LOCALFIRST_BENCH_N", "100000")),
                        help="responses (default 100000, or $LOCALFIRST_BENCH_N)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each, alternating (default 3)")
    args = parser.parse_args()
    n = args.n
    texts = _texts(n)
    results: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lf-bench-enc-") as tmp:
        for rep in range(args.runs):
            # plain first on even runs, encrypted first on odd ones: a drift of the machine hits both alike
            for encrypted in ((False, True) if rep % 2 == 0 else (True, False)):
                root = Path(tmp) / f"{rep}-{'enc' if encrypted else 'plain'}"
                root.mkdir()
                results[encrypted].append(one_run(root, texts, encrypted=encrypted))
                shutil.rmtree(root)
        kdf = kdf_seconds(5)
    total = time.perf_counter() - began

    def med(encrypted: bool, key: str) -> float:
        return statistics.median(r[key] for r in results[encrypted])

    def spread(encrypted: bool, key: str) -> str:
        values = sorted(r[key] for r in results[encrypted])
        return f"{statistics.median(values):.2f} ({values[0]:.2f}-{values[-1]:.2f})"

    steps = [
        ("push: all N from one machine", "push"),
        ("pull: a second machine replays every changeset", "pull"),
        ("compact, margin 0 (snapshot of the remote)", "compact"),
        ("bootstrap: a new machine, from the snapshot", "bootstrap"),
    ]
    rows = [(what, spread(False, key), spread(True, key), f"{med(True, key) / med(False, key):.2f}x")
            for what, key in steps]
    plain_mb, enc_mb = med(False, "remote_bytes") / 1e6, med(True, "remote_bytes") / 1e6
    rows.append(("remote folder after the push: MB", f"{plain_mb:.1f}", f"{enc_mb:.1f}", f"{enc_mb / plain_mb:.2f}x"))
    print(table(f"Encryption: {n:,} responses of ~1.1 KB prose through a folder remote, "
                f"median of {args.runs} alternating runs", rows,
                ("step", "plain: s (min-max)", "encrypted: s (min-max)", "encrypted/plain")))
    print(f"\nPassphrase key derivation at the defaults (scrypt N=2^17, r=8, p=1): {kdf * 1000:.0f} ms "
          "(median of 5). It runs once per `remote add` (creating or joining) and per passphrase change, "
          "never per command: push, pull and sync read the data keys from the key file in LOCALFIRST_HOME. "
          "(The remotes above use N=2^14 so that adding them stays cheap; their join is not timed.)")
    print(f"\nTotal wall time of this benchmark: {total:.0f} s.")


if __name__ == "__main__":
    main()
