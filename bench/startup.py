"""Cold start of `localfirst logs list -n 1` on a database of 20,000 responses.

Goals: at most 4.5x `python -c pass` (the baseline, in the same run), and at
least 10x faster than `llm logs list -n 1` on the same 20,000 exchanges (an
llm database written by `export --format llm` from the same store; llm, with
this package's plugin installed beside it, as a user has it). The row
"through typer" runs the same command with typer parsing it
(`localfirst.cli.main`), which is what the fast start saves.
"""

from __future__ import annotations

import importlib.util
import subprocess
import tempfile
from pathlib import Path

from localfirst.store import Store

from .common import installed_env, python, sample_responses, table

GOAL_RATIO = 4.5  # x python -c pass
GOAL_VS_LLM = 10.0  # llm's time / ours


def build(path: Path, n: int = 20_000) -> None:
    store = Store.open(path)
    batch = sample_responses(n)
    for start in range(0, n, 5000):
        store.log_many(batch[start:start + 5000])
    store.close()


def build_llm(source: Path, folder: Path) -> Path:
    """llm's logs.db in ``folder``, holding the exchanges of ``source``."""
    from localfirst.exporters import export

    folder.mkdir()
    store = Store.open(source, create=False)
    try:
        export(store, "llm", output=folder / "logs.db")
    finally:
        store.close()
    return folder / "logs.db"


def interleaved_ms(commands: list[list[str]], *, env: dict[str, str], runs: int = 21) -> list[float]:
    """Median wall time of each command, in ms, the commands taking turns run after run.

    On a shared machine the load drifts; taking turns gives every command the
    same share of it, so the ratios hold even when the absolute times do not.
    """
    import statistics
    import time

    samples: list[list[float]] = [[] for _ in commands]
    for round_ in range(runs + 1):
        for i, args in enumerate(commands):
            start = time.perf_counter()
            subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
            if round_:  # the first round warms the page cache and the .pyc files
                samples[i].append((time.perf_counter() - start) * 1000)
    return [statistics.median(s) for s in samples]


def imported(env: dict[str, str], args: list[str]) -> set[str]:
    out = subprocess.run([python(), "-X", "importtime", *args], env=env, capture_output=True, text=True).stderr
    return {line.rsplit("|", 1)[-1].strip() for line in out.splitlines() if line.startswith("import time:")}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        build(home / "logs.db")
        with_llm = importlib.util.find_spec("llm") is not None
        env = installed_env(LOCALFIRST_HOME=str(home), LLM_USER_PATH=str(home / "llm"))
        if with_llm:
            build_llm(home / "logs.db", home / "llm")
        py = python()
        commands = [
            ("python -c pass (baseline)", [py, "-c", "pass"]),
            ("localfirst logs list -n 1", [py, "-m", "localfirst", "logs", "list", "-n", "1"]),
            ("localfirst logs list -n 1 --json", [py, "-m", "localfirst", "logs", "list", "-n", "1", "--json"]),
            ("localfirst logs list -q sqlite -n 1",
             [py, "-m", "localfirst", "logs", "list", "-q", "sqlite", "-n", "1"]),
            ("localfirst logs list -n 1, through typer",
             [py, "-c", "import sys; from localfirst.cli import main; sys.exit(main(['logs', 'list', '-n', '1']))"]),
            ("localfirst logs path (typer)", [py, "-m", "localfirst", "logs", "path"]),
            ("python -c 'import typer'", [py, "-c", "import typer"]),
        ]
        script = Path(py).parent / "localfirst"
        if script.exists():  # the installed command, as a user types it
            commands.insert(2, ("localfirst logs list -n 1 (installed script)",
                                [str(script), "logs", "list", "-n", "1"]))
        if with_llm:
            commands.append(("llm logs list -n 1 (same exchanges)", [py, "-m", "llm", "logs", "list", "-n", "1"]))
        times = interleaved_ms([args for _, args in commands], env=env)
        base, ours = times[0], times[1]
        rows = []
        for (label, _), ms in zip(commands, times, strict=True):
            goal = ""
            if label == "localfirst logs list -n 1":
                goal = f"<= {GOAL_RATIO}x: {'met' if ms / base <= GOAL_RATIO else 'MISSED'}"
            elif label.startswith("llm "):
                speedup = ms / ours
                goal = f"{speedup:.1f}x ours; >= {GOAL_VS_LLM:.0f}x: {'met' if speedup >= GOAL_VS_LLM else 'MISSED'}"
            rows.append((label, f"{ms:.1f}", f"{ms / base:.1f}x", goal))
        if not with_llm:
            rows.append(("llm logs list -n 1", "-", "-", "llm not installed: pip install -e '.[test]'"))
        print(table("Cold start on 20,000 responses (median of 21 runs)", rows,
                    ("command", "median ms", "vs python", "goal")))
        used = imported(env, ["-m", "localfirst", "logs", "list", "-n", "1"])
        heavy = sorted(n for n in ("typer", "httpx", "boto3", "botocore", "rich", "sqlite_utils", "yaml") if n in used)
        print(f"\nHeavy modules imported by `logs list -n 1`: {heavy or 'none'}")


if __name__ == "__main__":
    main()
