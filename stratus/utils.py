"""Small helpers with no better home: time in Nova's formats, uuids."""

from __future__ import annotations

import datetime
import time
import uuid

UTC = datetime.UTC


_EPOCH = datetime.datetime(1970, 1, 1)


def utcnow() -> datetime.datetime:
    """Naive UTC, as stored in the database (SQLite has no time zones): the epoch plus the microseconds since it,
    a third of the cost of ``datetime.now(UTC).replace(tzinfo=None)`` (``replace`` alone costs a microsecond, and
    every write of the build path stamps its rows)."""
    return _EPOCH + datetime.timedelta(0, 0, time.time_ns() // 1000)


def isotime(value: datetime.datetime | None) -> str | None:
    """``2025-01-02T03:04:05Z``: Nova's timestamp form in server bodies."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    return value.isoformat(timespec="seconds") + "Z"


def isotime_usec(value: datetime.datetime | None) -> str | None:
    """``2025-01-02T03:04:05.123456``: the form Nova uses for launched_at, fault and action times."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    return value.isoformat(timespec="microseconds")


def parse_isotime(text: str) -> datetime.datetime:
    """Parse an ISO 8601 time as clients send it (``Z`` or an offset); returned naive UTC."""
    value = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace(" ", "+", 1)
                                            if "T" in text else text.strip())
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def new_uuid() -> str:
    return str(uuid.uuid4())


def is_uuid_like(value: object) -> bool:
    try:
        return str(uuid.UUID(str(value))) == str(value).lower()
    except ValueError:
        return False
