"""Merging stores and moving their changes between machines."""

from .apply import Conflict
from .config import Added, add_remote, get_remote, list_remotes, remove_remote
from .engine import (
    Compacted,
    HostStatus,
    PullResult,
    PushResult,
    RemoteStatus,
    SyncResult,
    Verified,
    change_passphrase,
    compact,
    create_team,
    join_team,
    pull,
    push,
    reset_host,
    rotate_key,
    status,
    sync,
    team_whoami,
    team_writers,
    verify,
)
from .merge import MergeResult, merge_database
from .remotes import (
    ObjectExists,
    ObjectInfo,
    ObjectMissing,
    ObjectTooLarge,
    PreconditionFailed,
    Remote,
    RemoteConfig,
    RemoteSignal,
    check_key,
    open_remote,
)

__all__ = [
    "MergeResult", "merge_database",
    "Added", "add_remote", "get_remote", "list_remotes", "remove_remote", "change_passphrase", "rotate_key",
    "push", "pull", "sync", "status", "reset_host", "compact", "Compacted", "verify", "Verified",
    "PushResult", "PullResult", "SyncResult", "RemoteStatus", "HostStatus", "Conflict",
    "create_team", "join_team", "team_writers", "team_whoami",
    # What a remote implementation needs: the protocol, what it returns and
    # raises, and the key check every implementation runs.
    "Remote", "RemoteConfig", "ObjectInfo", "RemoteSignal", "ObjectExists", "ObjectMissing",
    "PreconditionFailed", "ObjectTooLarge", "check_key", "open_remote",
]
