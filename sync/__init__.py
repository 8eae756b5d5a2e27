"""Merging stores and moving their changes between machines."""

from .merge import MergeResult, merge_database

__all__ = ["MergeResult", "merge_database"]
