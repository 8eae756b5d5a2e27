"""Benchmarks: each module prints a table with ratios against a baseline run beside it."""
