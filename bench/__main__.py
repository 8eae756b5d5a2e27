"""Run every benchmark: `python -m bench` (or `make bench`)."""

import importlib
import sys

MODULES = ["startup", "store", "merge", "prompt", "importer", "sync"]

for name in sys.argv[1:] or MODULES:
    importlib.import_module(f"bench.{name}").main()
