"""Merging stores and moving their changes between machines."""

from .config import add_remote, get_remote, list_remotes, remove_remote
from .engine import (
    HostStatus,
    PullResult,
    PushResult,
    RemoteStatus,
    SyncResult,
    pull,
    push,
    reset_host,
    status,
    sync,
)
from .merge import MergeResult, merge_database
from .remotes import Remote, RemoteConfig, open_remote

__all__ = [
    "MergeResult", "merge_database",
    "add_remote", "get_remote", "list_remotes", "remove_remote",
    "push", "pull", "sync", "status", "reset_host",
    "PushResult", "PullResult", "SyncResult", "RemoteStatus", "HostStatus",
    "Remote", "RemoteConfig", "open_remote",
]
