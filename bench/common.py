"""Helpers shared by the benchmarks: timing, medians, tables, sample data."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from localfirst.records import Part, Response


def median_ms(fn: Callable[[], object], *, runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def installed_env(**extra: str) -> dict[str, str]:
    """The environment of an installed copy: pip byte-compiles on install, so
    .pyc files exist; a PYTHONDONTWRITEBYTECODE left in the environment would
    make every run recompile the sources and time that instead."""
    import compileall
    import os

    root = Path(__file__).resolve().parent.parent
    for package in ("localfirst", "sync"):
        compileall.compile_dir(root / package, quiet=1)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(extra)
    return env


def command_ms(args: Sequence[str], *, runs: int = 21, env: dict[str, str] | None = None) -> float:
    """Median wall time of a command, in ms."""
    def once() -> None:
        subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
    once()  # warm the page cache and .pyc files
    return median_ms(once, runs=runs)


def table(title: str, rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |"  # noqa: E731
    out = [f"\n### {title}\n", line(header), "| " + " | ".join("-" * w for w in widths) + " |"]
    out += [line(r) for r in rows]
    return "\n".join(out)


def sample_responses(n: int, *, conversations: int = 0, seed: str = "") -> list[Response]:
    """Realistic-looking exchanges: a paragraph of prompt and response, some tool calls."""
    words = ("local first software keeps data on the device syncs later conflict free "
             "sqlite ulid merge push pull changeset remote bucket prompt response model").split()
    out = []
    for i in range(n):
        text = " ".join(words[(i * 7 + k) % len(words)] for k in range(40))
        parts = []
        if i % 10 == 0:
            parts = [Part(type="text", text=text[:80]),
                     Part(type="tool_call", tool_call_id=f"call_{i}", tool_name="search", arguments={"q": text[:20]})]
        out.append(Response(model="bench-model", prompt=f"{seed}{i} {text[:120]}", response=text,
                            input_tokens=40, output_tokens=60, options={"temperature": 0.1}, parts=parts))
    return out


def prose_responses(n: int, *, seed: int = 7) -> list[Response]:
    """Text closer to real prose for the full-text index: 20 and 60 words per
    prompt and response, drawn from a 20,000-word vocabulary with Zipf's law."""
    import random

    rng = random.Random(seed)
    vocab = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
             for _ in range(20_000)]
    weights = [1 / (i + 1) for i in range(len(vocab))]

    def words(k: int) -> str:
        return " ".join(rng.choices(vocab, weights, k=k))

    return [Response(model="bench-model", prompt=words(20), response=words(60)) for _ in range(n)]


def python() -> str:
    return sys.executable


def size_mb(path: Path) -> float:
    return path.stat().st_size / 1e6
