"""What the llm plugin costs llm's start-up: llm imports it on every command.

Goal: <= 5 ms. Two measures, each side by side in the same run:

1. `llm --version` and `llm plugins` with and without the plugin, runs
   alternating (LLM_LOAD_PLUGINS names the plugins llm loads: llm-echo alone,
   or llm-echo and localfirst). llm itself takes most of a second here, so
   the difference is within the noise of one run; the medians show it.
2. In one process that has already imported llm (as llm has when it loads
   plugins): importing `localfirst.llm_plugin` and calling its
   register_commands hook, against importing a module that does nothing,
   each in fresh processes.
"""

from __future__ import annotations

import statistics
import subprocess
import time

from .common import installed_env, python, table

GOAL_MS = 5.0
RUNS = 21

_INPROCESS = """
import sys, time, importlib, llm, llm.cli, click
assert {module!r} == "json" or {module!r} not in sys.modules
start = time.perf_counter()
module = importlib.import_module({module!r})
hook = getattr(module, "register_commands", None)
if hook is not None:
    hook(click.Group())
print((time.perf_counter() - start) * 1000)
"""


def _wall(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
    return (time.perf_counter() - start) * 1000


def main() -> None:
    base_env = installed_env()
    without = {**base_env, "LLM_LOAD_PLUGINS": "llm-echo"}
    with_plugin = {**base_env, "LLM_LOAD_PLUGINS": "llm-echo,localfirst"}
    rows = []
    for label, args in (("llm --version", ["--version"]), ("llm plugins", ["plugins"])):
        command = [python(), "-m", "llm", *args]
        _wall(command, without), _wall(command, with_plugin)  # warm caches
        a: list[float] = []
        b: list[float] = []
        for _ in range(RUNS):
            a.append(_wall(command, without))
            b.append(_wall(command, with_plugin))
        ma, mb = statistics.median(a), statistics.median(b)
        rows.append((label, f"{ma:.1f}", f"{mb:.1f}", f"{mb - ma:+.1f}", f"{mb / ma:.3f}x"))
    print(table(f"llm start-up with and without the plugin (median of {RUNS}, alternating)", rows,
                ("command", "without ms", "with ms", "difference ms", "ratio")))

    samples: dict[str, list[float]] = {"json": [], "localfirst.llm_plugin": []}
    for _ in range(RUNS):
        for module in samples:
            # llm.cli loads the installed plugins on import: keep ours out of that.
            out = subprocess.run([python(), "-c", _INPROCESS.format(module=module)], env=without,
                                 capture_output=True, text=True, check=True).stdout
            samples[module].append(float(out))
    base = statistics.median(samples["json"])
    plugin = statistics.median(samples["localfirst.llm_plugin"])
    verdict = "met" if plugin <= GOAL_MS else "MISSED"
    print(table(f"Import and hook inside llm's process (median of {RUNS} fresh processes)", [
        ("import json (already loaded: baseline)", f"{base:.3f}", "1.0x", ""),
        ("import localfirst.llm_plugin + register_commands", f"{plugin:.3f}", f"{plugin / max(base, 1e-6):.0f}x",
         f"<= {GOAL_MS:.0f} ms: {verdict}"),
    ], ("step", "median ms", "vs baseline", "goal")))


if __name__ == "__main__":
    main()
