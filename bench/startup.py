"""Cold start of `localfirst logs list -n 1` on a database of 20,000 responses.

Goal: <= 65 ms median. Baseline: `python -c pass` in the same run.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from localfirst.store import Store

from .common import command_ms, installed_env, python, sample_responses, table

GOAL_MS = 65.0


def build(path: Path, n: int = 20_000) -> None:
    store = Store.open(path)
    batch = sample_responses(n)
    for start in range(0, n, 5000):
        store.log_many(batch[start:start + 5000])
    store.close()


def heavy_imports(env: dict[str, str]) -> list[str]:
    out = subprocess.run([python(), "-X", "importtime", "-m", "localfirst", "logs", "list", "-n", "1"],
                         env=env, capture_output=True, text=True).stderr
    names = {line.rsplit("|", 1)[-1].strip() for line in out.splitlines()}
    return sorted(n for n in ("httpx", "boto3", "botocore", "rich.progress", "sqlite_utils", "yaml") if n in names)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        build(home / "logs.db")
        env = installed_env(LOCALFIRST_HOME=str(home))
        base = command_ms([python(), "-c", "pass"], env=env)
        rows = [("python -c pass (baseline)", f"{base:.1f}", "1.0x", "")]
        for label, args in (
            ("localfirst logs list -n 1", ["logs", "list", "-n", "1"]),
            ("localfirst logs list -n 1 --json", ["logs", "list", "-n", "1", "--json"]),
            ("localfirst logs list -q sqlite -n 1", ["logs", "list", "-q", "sqlite", "-n", "1"]),
            ("localfirst logs path", ["logs", "path"]),
        ):
            ms = command_ms([python(), "-m", "localfirst", *args], env=env)
            goal = ""
            if label == "localfirst logs list -n 1":  # the one command with a goal
                goal = f"<= {GOAL_MS:.0f} ms: {'met' if ms <= GOAL_MS else 'MISSED'}"
            rows.append((label, f"{ms:.1f}", f"{ms / base:.1f}x", goal))
        print(table("Cold start on 20,000 responses (median of 21 runs)", rows,
                    ("command", "median ms", "vs python", "goal")))
        print(f"\nHeavy modules imported by `logs list -n 1`: {heavy_imports(env) or 'none'}")


if __name__ == "__main__":
    main()
