"""Run every benchmark, or the ones named: `python -m bench [startup store merge ...]` (or `make bench`)."""

import importlib
import sys

MODULES = ["startup", "store", "merge", "prompt", "importer", "sync", "browse", "plugin_startup", "encryption",
           "llm_paths", "team", "parts_table"]

names = sys.argv[1:] or MODULES
for name in names:
    sys.argv = [f"bench.{name}"]  # each module parses its own options
    importlib.import_module(f"bench.{name}").main()
