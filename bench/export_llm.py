"""``export --format llm`` against ``export --format markdown``, side by side on the same store.

Run: ``.venv/bin/python -m bench.export_llm [--sizes 20000,200000] [--rounds 3]``.
Builds an llm database of N turns of ~1.1 KB prose (bench.importer.make_current),
imports it into a store (not timed), then runs the two exports alternately,
each in a child process of its own, ``--rounds`` times. Prints the median
wall time, the median CPU time (user + sys: less sensitive than wall time to
other work on a shared machine), the peak memory (the child's maximum RSS),
and the ratios llm / Markdown of both times. Markdown goes to standard
output, sent to /dev/null, as in bench/million.py (to a file it costs a little
more).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PY = sys.executable


def child(args: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + sys) and peak RSS (MiB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{args} failed")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def build(n: int, folder: Path) -> Path:
    """A store of ``n`` responses, made in a child (the parent's pages would count in its peak)."""
    llm_db, db = folder / "logs.db", folder / "lf.db"
    subprocess.run([PY, "-c", "import pathlib; from bench.importer import make_current; "
                    f"make_current(pathlib.Path({str(llm_db)!r}), {n})"], check=True)
    subprocess.run([PY, "-c", "from localfirst.importers import import_llm; from localfirst.store import Store; "
                    f"import_llm(Store.open({str(db)!r}), {str(llm_db)!r})"], check=True)
    llm_db.unlink()
    return db


def run(n: int, folder: Path, rounds: int, env: dict[str, str]) -> dict[str, list[tuple[float, float, float]]]:
    db = build(n, folder)
    lf = [PY, "-m", "localfirst", "--db", str(db), "export", "--format"]
    samples: dict[str, list[tuple[float, float, float]]] = {"markdown": [], "llm": []}
    for i in range(rounds):
        out = folder / f"out{i}.db"
        samples["markdown"].append(child([*lf, "markdown"], env))
        samples["llm"].append(child([*lf, "llm", str(out)], env))
        out.unlink()
    return samples


def main() -> None:
    from .common import installed_env

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000,200000", help="comma-separated response counts")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each export, alternating")
    parser.add_argument("--tmp", default=None, help="folder for the databases")
    args = parser.parse_args()
    env = installed_env()
    print("| responses | export | wall (median) | CPU (median) | peak | wall ratio | CPU ratio |")
    print(f"|{' --- |' * 7}")
    for n in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
            samples = run(n, Path(tmp), args.rounds, env)
        med = {k: (statistics.median(s[0] for s in v), statistics.median(s[1] for s in v), max(s[2] for s in v))
               for k, v in samples.items()}
        base = med["markdown"]
        for name, (wall, cpu, peak) in med.items():
            ratios = f"{wall / base[0]:.2f}x | {cpu / base[1]:.2f}x" if name == "llm" else " |"
            print(f"| {n:,} | {name} | {wall:.2f} s | {cpu:.2f} s | {peak:.0f} MB | {ratios} |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
