"""Times as localfirst stores them: UTC, ISO 8601, microseconds, a trailing Z.

One fixed-width format, so that times compare correctly as strings in SQL.
"""

from __future__ import annotations

import datetime as dt

from .errors import BadInput

__all__ = ["now_utc", "to_utc_text", "parse_when"]

_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def now_utc() -> str:
    return dt.datetime.now(dt.UTC).strftime(_FORMAT)


def to_utc_text(value: dt.datetime) -> str:
    """Normalise an aware or naive (taken as UTC) datetime to the stored form."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime(_FORMAT)


def normalise(text: str) -> str:
    """Normalise a stored or imported time string; raises ValueError."""
    return to_utc_text(dt.datetime.fromisoformat(text.strip().replace(" ", "T", 1)))


def parse_when(text: str, *, end_of_day: bool = False, option: str = "--since") -> str:
    """Parse a date (``2026-11-20``) or an ISO time for a filter option.

    Times without an offset are UTC. With ``end_of_day`` a bare date means the
    last microsecond of that day, so ``--until 2026-11-20`` includes the 20th.
    """
    raw = text.strip()
    try:
        if len(raw) == 10:
            day = dt.date.fromisoformat(raw)
            moment = dt.datetime.combine(day, dt.time.max if end_of_day else dt.time.min)
            return to_utc_text(moment)
        return normalise(raw)
    except ValueError:
        raise BadInput(f"{option} {text!r} is not a date (2026-11-20) or an ISO time (2026-11-20T09:30)") from None
