"""What checking every value costs a pull: this tree against an earlier version, side by side.

    python -m bench.pull_checks [--quick] [--baseline GIT_REF]

One writer pushes N responses of ~1.1 kB of prose (a text part each) to a
folder remote. Then a fresh reader pulls all of it, alternately with this
tree and with GIT_REF (default: the last version that did not check values),
checked out in a temporary worktree; each pull runs in a process of its own,
which reports its time and peak memory. Medians of the rounds are printed.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from .common import installed_env

BASELINE = "1601229"  # the last version before the value checks and the merge engine
ROOT = Path(__file__).resolve().parent.parent

_WRITER = """
import sys
import sync
from localfirst.records import Part, Response
from localfirst.store import Store

n, db, remote = int(sys.argv[1]), sys.argv[2], sys.argv[3]
words = ("the quick brown fox jumps over a lazy dog while seven wizards quietly judge "
         "boxing matches and write long letters about sqlite write ahead logs ").split()
store = Store.open(db)
for start in range(0, n, 10_000):
    batch = []
    for i in range(start, min(n, start + 10_000)):
        text = " ".join(words[(i * 7 + k) % len(words)] for k in range(180))[:1100]
        batch.append(Response(model="m", prompt=f"question {i}: " + text[:200],
                              parts=[Part(type="text", role="assistant", text=text)],
                              input_tokens=10, output_tokens=200))
    store.log_many(batch)
sync.add_remote(store, "origin", remote)
sync.push(store)
"""

_READER = """
import json, resource, sys, time
import sync
from localfirst.store import Store

db, remote = sys.argv[1], sys.argv[2]
store = Store.open(db)
sync.add_remote(store, "origin", remote)
start = time.perf_counter()
sync.pull(store)
took = time.perf_counter() - start
count = store.conn.execute("SELECT count(*) FROM responses").fetchone()[0]
print(json.dumps({"seconds": took, "responses": count,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _run(code: str, args: list[str], *, tree: Path) -> str:
    env = installed_env()
    env["PYTHONPATH"] = str(tree)
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                          cwd=tree, check=True)
    return done.stdout


def main() -> None:
    quick = "--quick" in sys.argv
    ref = sys.argv[sys.argv.index("--baseline") + 1] if "--baseline" in sys.argv else BASELINE
    n = 20_000 if quick else 100_000
    rounds = 2 if quick else 3
    with tempfile.TemporaryDirectory(prefix="lf-bench-checks-") as tmp:
        root = Path(tmp)
        old = root / "baseline-tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), ref],
                       check=True, capture_output=True)
        try:
            remote = (root / "remote").as_uri()
            (root / "remote").mkdir()
            _run(_WRITER, [str(n), str(root / "writer.db"), remote], tree=ROOT)
            results: dict[str, list[dict[str, float]]] = {"this tree": [], ref: []}
            for i in range(rounds):
                for name, tree in (("this tree", ROOT), (ref, old)):
                    db = root / f"reader-{name.replace(' ', '-')}-{i}.db"
                    out = json.loads(_run(_READER, [str(db), remote], tree=tree))
                    assert out["responses"] == n, out
                    results[name].append(out)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)],
                           check=False, capture_output=True)
    rate = {k: n / statistics.median(r["seconds"] for r in v) for k, v in results.items()}
    peak = {k: statistics.median(r["peak_mib"] for r in v) for k, v in results.items()}
    print(f"\n### Pull + apply of {n:,} responses (~1.1 kB of prose each), median of {rounds}\n")
    print("| version | responses/s | peak memory | vs the baseline |")
    print("| --- | --- | --- | --- |")
    for name in (ref, "this tree"):
        print(f"| {name} | {rate[name]:,.0f} | {peak[name]:.0f} MiB | {rate[name] / rate[ref]:.2f}x |")


if __name__ == "__main__":
    main()
