"""The one error tree of localfirst.

Every error a user can cause is a :class:`LocalFirstError`. The CLI turns it
into a single ``Error: ...`` line on stderr and exits with ``exit_code``.
Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = [
    "LocalFirstError",
    "ReadOnly",
    "BadInput",
    "NotFound",
    "DatabaseError",
    "NotADatabase",
    "SchemaTooNew",
    "ConfigError",
    "ModelError",
    "Interrupted",
    "RemoteError",
    "ForkDetected",
    "CorruptObject",
    "ObjectTooLarge",
    "FormatTooNew",
    "ClockSkew",
    "LeaseHeld",
    "WrongKey",
    "MissingExtra",
]


class LocalFirstError(Exception):
    """Root of every error a user can cause or fix."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class BadInput(LocalFirstError):
    """An argument, option or input document the user gave is not valid."""

    exit_code = 2


class NotFound(LocalFirstError):
    """A conversation, response, template, model or remote does not exist."""

    exit_code = 3


class DatabaseError(LocalFirstError):
    """The database cannot be opened, read or written."""

    exit_code = 4


class NotADatabase(DatabaseError):
    """A file is not an SQLite database, or is corrupt."""


class SchemaTooNew(DatabaseError):
    """The database was written by a newer version of localfirst."""


class ConfigError(LocalFirstError):
    """The configuration in the home directory is missing or not valid."""

    exit_code = 5


class ModelError(LocalFirstError):
    """A model server refused, failed or sent something we cannot read."""

    exit_code = 6


class Interrupted(LocalFirstError):
    """The user pressed Ctrl-C before anything worth keeping arrived."""

    exit_code = 130


class RemoteError(LocalFirstError):
    """A sync remote cannot be reached or answered with an error."""

    exit_code = 7


class ForkDetected(RemoteError):
    """Another machine pushes under this store's host id."""

    exit_code = 8


class CorruptObject(RemoteError):
    """A changeset on the remote is damaged, tampered with or not ours."""

    exit_code = 9


class ObjectTooLarge(CorruptObject):
    """An object is larger than the reader accepts: refused before it is read whole."""


class FormatTooNew(RemoteError):
    """The remote holds data of a newer sync format than this version reads."""


class ClockSkew(RemoteError):
    """This machine's clock disagrees with the remote's by more than sync allows."""

    exit_code = 10


class LeaseHeld(RemoteError):
    """Another compaction holds the remote's compaction lease."""


class WrongKey(RemoteError):
    """An encrypted remote that this machine's key (or the passphrase given) does not open."""

    exit_code = 11


class ReadOnly(LocalFirstError):
    """A write to a team library this machine joined read-only, or is not yet a writer of."""

    exit_code = 12


class MissingExtra(ConfigError):
    """A command needs an optional extra of localfirst that is not installed."""
