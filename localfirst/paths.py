"""Where localfirst keeps its files.

``LOCALFIRST_HOME`` wins; otherwise the platform's user data directory. Written
by hand rather than with platformdirs, which costs ~15 ms of import on every
command.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["home", "ensure_home", "default_db_path", "logs_off_path"]

APP = "localfirst"


def home() -> Path:
    """The directory that holds the database and the configuration."""
    env = os.environ.get("LOCALFIRST_HOME")
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / APP
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / APP
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / APP


def ensure_home(*, create: bool = True) -> Path:
    """The home directory, created when missing; a clear error when it cannot be.

    ``create=False`` (commands that only read) leaves a missing home missing
    and still refuses something that is not a directory in its place.
    """
    from .errors import ConfigError

    path = home()
    if not create:
        if path.exists() and not path.is_dir():
            raise ConfigError(f"the home directory {path} is not a directory")
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the home directory {path}: {exc.strerror}") from exc
    if not path.is_dir():
        raise ConfigError(f"the home directory {path} is not a directory")
    return path


def default_db_path() -> Path:
    return home() / "logs.db"


def logs_off_path() -> Path:
    """A file whose presence turns logging off on this machine."""
    return home() / "logs-off"
