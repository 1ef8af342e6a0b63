"""The one clock Plinth reads: timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime.

    Example:
        >>> utcnow().tzinfo is not None
        True
    """
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Return ``value`` as an aware UTC datetime; naive values are taken to be UTC already.

    Example:
        >>> as_utc(datetime(2024, 1, 1)).isoformat()
        '2024-01-01T00:00:00+00:00'
    """
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def to_utc_datetime(value: Any) -> datetime | None:
    """Return a datetime, date or pandas timestamp as aware UTC (``None`` stays ``None``).

    Example:
        >>> to_utc_datetime(date(2024, 1, 2)).isoformat()
        '2024-01-02T00:00:00+00:00'
    """
    if value is None:
        return None
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return None


def human_duration(delta: timedelta) -> str:
    """Format a duration for a message, in its largest whole unit.

    Example:
        >>> human_duration(timedelta(hours=36))
        '1.5 days'
    """
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f} {unit}s"
    return f"{seconds} seconds"
