"""`make demo`: two machines log offline and end with the same history.

Runs the real CLI as subprocesses, each "machine" with its own home
directory under ./demo-home, using only embedded defaults: a local SQLite
file per machine, the offline `echo` model, and a folder remote. Run it
again to start over.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path("demo-home")


def run(machine: str, *args: str, show: bool = True) -> str:
    env = {**os.environ, "LOCALFIRST_HOME": str(ROOT / machine)}
    if show:
        shown = " ".join(a if " " not in a else repr(a) for a in args)
        print(f"\n[{machine}]$ localfirst {shown}")
    done = subprocess.run([sys.executable, "-m", "localfirst", *args], env=env,
                          capture_output=True, text=True)
    output = (done.stdout + done.stderr).rstrip()
    if output and show:
        print("    " + output.replace("\n", "\n    "))
    if done.returncode != 0:
        raise SystemExit(f"demo step failed with exit code {done.returncode}")
    return done.stdout.strip()


def main() -> None:
    if ROOT.exists():
        shutil.rmtree(ROOT)
    ROOT.mkdir()
    remote = (ROOT / "remote").resolve()
    print("Two machines, 'laptop' and 'desktop', each with its own database in", ROOT)

    run("laptop", "prompt", "What is local-first software?")
    run("laptop", "prompt", "-c", "Why keep LLM history in SQLite?", "-o", "temperature", "0.2")
    run("desktop", "log", "-m", "gpt-4o", "-p", "Name a conflict-free id", "-r", "A ULID.")
    rid = run("desktop", "log", "-m", "gpt-4o", "-p", "A secret I regret", "-r", "...")
    run("desktop", "logs", "rm", rid, "--yes")

    url = remote.as_uri()
    print(f"\nBoth machines sync through a folder remote, {url}")
    for machine in ("laptop", "desktop"):
        run(machine, "remote", "add", "shared", url)
    run("laptop", "sync")
    run("desktop", "sync")
    cid = run("desktop", "logs", "list", "-n", "1", "-q", "SQLite", "--json", show=False)
    run("desktop", "conversations", "rename", _ids(cid, "conversation_id")[0], "Why SQLite")
    run("desktop", "sync")
    run("laptop", "sync")
    run("laptop", "sync")  # nothing new anywhere: one request

    laptop = run("laptop", "logs", "list", "-n", "0", "--json", show=False)
    desktop = run("desktop", "logs", "list", "-n", "0", "--json", show=False)
    run("laptop", "logs", "list", "-s", "-n", "0")
    run("laptop", "conversations", "list")
    run("desktop", "logs", "list", "-q", "ULID", "-s")
    same = _ids(laptop) == _ids(desktop)
    print(f"\nBoth machines hold the same {len(_ids(laptop))} responses: {'yes' if same else 'NO'}")
    if not same:
        raise SystemExit(1)


def _ids(payload: str, key: str = "id") -> list[str]:
    import json

    return sorted(r[key] for r in json.loads(payload))


if __name__ == "__main__":
    main()
