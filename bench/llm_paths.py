"""What the paths added for llm users cost, each beside its baseline in the same run.

- `models list --json` listing llm's models too (llm imported, its plugins
  loaded) against `--no-llm`, against llm's own `llm models list`, and
  against `python -c pass`.
- The search box of `responses` in `serve`: the redirect to the ranked
  `search` query, followed, against asking the query directly and against
  Datasette's unranked table filter (the table page with `_sort=`, which is
  not redirected), for a word in about one response in ten, on N responses
  of prose, through Datasette's own client.

`python -m bench llm_paths [--responses N]`
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from localfirst.store import Store

from .common import command_ms, installed_env, prose_responses, python, table


def bench_models(tmp: Path) -> str:
    env = installed_env(LOCALFIRST_HOME=str(tmp / "home"), LLM_USER_PATH=str(tmp / "llm"))
    base = command_ms([python(), "-c", "pass"], env=env)
    rows = [("python -c pass (baseline)", f"{base:.1f}", "1.0x")]
    for label, args in (
        ("localfirst models list --json --no-llm", [python(), "-m", "localfirst", "models", "list", "--json",
                                                    "--no-llm"]),
        ("localfirst models list --json (with llm's)", [python(), "-m", "localfirst", "models", "list", "--json"]),
        ("llm models list (llm itself)", [python(), "-m", "llm", "models", "list"]),
    ):
        ms = command_ms(args, env=env)
        rows.append((label, f"{ms:.1f}", f"{ms / base:.1f}x"))
    return table("Listing models, cold start (median of 21 runs)", rows, ("command", "median ms", "vs python"))


def bench_search_box(tmp: Path, n: int) -> str:
    from localfirst.web import make_datasette

    db = tmp / "logs.db"
    store = Store.open(db)
    batch = prose_responses(n)
    for start in range(0, n, 5000):
        store.log_many(batch[start:start + 5000])
    store.close()
    # A word that matches some responses but not most: ranking has work to do.
    from collections import Counter

    seen = Counter(w for r in batch[:1000] for w in set((r.prompt or "").split() + (r.response or "").split()))
    word = min(seen, key=lambda w: abs(seen[w] - 100))
    matches = sum(1 for r in batch if word in (r.prompt or "").split() + (r.response or "").split())
    client = make_datasette(db).client

    async def timed(paths: list[str], runs: int = 31) -> float:
        samples = []
        for i in range(runs + 1):
            start = time.perf_counter()
            for p in paths:
                got = await client.get(p)
                assert got.status_code in (200, 302), (p, got.status_code)
            if i:  # the first run warms the caches
                samples.append((time.perf_counter() - start) * 1000)
        samples.sort()
        return samples[len(samples) // 2]

    async def go() -> list[tuple[str, str, str]]:
        moved = await client.get(f"/logs/responses?_search={word}")
        assert moved.status_code == 302
        direct = await timed([f"/logs/search?q={word}"])
        rows = [("/logs/search?q=W (the ranked query, baseline)", f"{direct:.1f}", "1.00x")]
        for label, paths in (
            ("/logs/responses?_search=W -> 302 -> the ranked query", [f"/logs/responses?_search={word}",
                                                                      moved.headers["location"]]),
            ("/logs/responses?_search=W&_sort=datetime_utc (unranked table page)",
             [f"/logs/responses?_search={word}&_sort=datetime_utc"]),
        ):
            ms = await timed(paths)
            rows.append((label, f"{ms:.1f}", f"{ms / direct:.2f}x"))
        return rows

    rows = asyncio.run(go())
    return table(f"The search box on {n:,} responses, W matching {matches:,} of them, through Datasette's client "
                 "(HTML pages, median of 31)", rows,
                 ("request", "median ms", "vs query"))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench llm_paths")
    parser.add_argument("--responses", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(bench_models(Path(tmp)))
        print(bench_search_box(Path(tmp), args.responses))


if __name__ == "__main__":
    main()
