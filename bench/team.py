"""Team libraries: a new member's first pull, and what running a team's template costs.

    .venv/bin/python -m bench team [--templates N] [--versions V] [--runs R]

A library of N templates x V versions (default 1,000 x 10), each labelled
`production`, is pushed by its owner. Side by side in one run:

1. A new member's `team join` + first pull of it, against `remote add` +
   first pull of the same templates from a personal remote (the baseline:
   no signatures, no scope checks): requests and wall time; then the same
   after the owner compacts (a snapshot): the member's requests stop
   depending on the history.
2. `localfirst prompt -t acme/NAME@production` against `prompt -t NAME`
   (a personal template of the same text), as separate processes, runs
   alternating. Goal: within 5 ms.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from localfirst.store import Store

from .common import installed_env, table

GOAL_MS = 5.0


def _library(owner: Store, templates: int, versions: int) -> None:
    from localfirst.templates import add_template, add_version, label_template

    for n in range(templates):
        for team in ("acme/", ""):
            name = f"{team}t{n:04d}"
            add_template(owner, name, prompt=f"Template {n}, version 0: review $input", model="echo")
            for v in range(1, versions):
                add_version(owner, name, prompt=f"Template {n}, version {v}: review $input")
            label_template(owner, name, "production")


def _first_pull(make: str, root: Path, url: str, fingerprint: str) -> tuple[float, int, int]:
    """(seconds, requests, templates) of a new machine's joining and first pull."""
    import sync
    from sync.folder import FolderRemote

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from synctools import CountingRemote

    store = Store.open(root / f"{make}-{time.perf_counter_ns()}.db")
    counting = CountingRemote(FolderRemote(url))
    start = time.perf_counter()
    if make == "team":
        sync.join_team(store, "acme", url, trust=fingerprint, read_only=True, client=counting)
        sync.pull(store, "acme", client=counting)
    else:
        sync.add_remote(store, "origin", url, client=counting)
        sync.pull(store, "origin", client=counting)
    took = time.perf_counter() - start
    count = store.conn.execute("SELECT count(*) FROM templates").fetchone()[0]
    store.close()
    return took, counting.total, count


def _startup(member: Path, env: dict[str, str], runs: int) -> list[tuple[str, ...]]:
    def once(args: list[str]) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "localfirst", "--db", str(member), *args], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return (time.perf_counter() - start) * 1000

    personal = ["prompt", "-t", "t0500", "the diff"]
    team = ["prompt", "-t", "acme/t0500@production", "the diff"]
    once(personal), once(team)
    a, b = [], []
    for _ in range(runs):
        a.append(once(personal))
        b.append(once(team))
    ma, mb = statistics.median(a), statistics.median(b)
    verdict = "met" if mb - ma <= GOAL_MS else "missed"
    return [("prompt -t t0500 (personal)", f"{ma:.1f}", "1.00x", ""),
            ("prompt -t acme/t0500@production", f"{mb:.1f}", f"{mb / ma:.2f}x",
             f"{mb - ma:+.1f} ms ({verdict}: goal <= {GOAL_MS:.0f} ms)")]


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.team")
    parser.add_argument("--templates", type=int, default=1000)
    parser.add_argument("--versions", type=int, default=10)
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args(sys.argv[1:])
    import os

    import sync

    with tempfile.TemporaryDirectory(prefix="localfirst-bench-team-") as tmp:
        root = Path(tmp)
        os.environ["LOCALFIRST_HOME"] = str(root / "home")
        env = installed_env(LOCALFIRST_HOME=str(root / "home"))
        owner = Store.open(root / "owner.db")
        made = sync.create_team(owner, "acme", (root / "team").as_uri())
        sync.add_remote(owner, "origin", (root / "personal").as_uri())
        start = time.perf_counter()
        _library(owner, args.templates, args.versions)
        built = time.perf_counter() - start
        sync.sync(owner, "acme")
        sync.sync(owner, "origin")
        rows = []
        for when in ("log only", "after compact"):
            if when == "after compact":
                sync.compact(owner, "acme", purge=True)
                sync.compact(owner, "origin", purge=True)
            base = _first_pull("personal", root, (root / "personal").as_uri(), made.fingerprint)
            got = _first_pull("team", root, (root / "team").as_uri(), made.fingerprint)
            assert got[2] == base[2] == args.templates, (got, base)
            rows.append((f"personal remote, {when} (baseline)", f"{base[0]:.2f}", str(base[1]), "1.00x"))
            rows.append((f"team join + first pull, {when}", f"{got[0]:.2f}", str(got[1]),
                         f"{got[0] / base[0]:.2f}x"))
        print(table(f"A new member's first pull of {args.templates} templates x {args.versions} versions "
                    f"(library built in {built:.1f} s)", rows, ("what", "seconds", "requests", "ratio")))
        member = root / "member.db"
        store = Store.open(member)
        sync.join_team(store, "acme", (root / "team").as_uri(), trust=made.fingerprint, read_only=True)
        sync.pull(store, "acme")
        from localfirst.templates import add_template, get_template

        source = get_template(owner, "t0500")
        add_template(store, "t0500", prompt=source.prompt, model="echo")
        store.close()
        print(table(f"Running a template, as separate processes (median of {args.runs}, alternating)",
                    _startup(member, env, args.runs), ("command", "ms", "ratio", "difference")))


if __name__ == "__main__":
    main()
