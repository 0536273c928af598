"""Parsing and normalising timestamps from the formats stores export."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_FORMATS = (
    "%Y-%m-%d %H:%M:%S %z",
    "%Y-%m-%d %H:%M %z",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d",
)


def parse_timestamp(text: str | None) -> datetime | None:
    """Parse ISO 8601 or Shopify's `2026-06-24 22:58:34 +0530` into aware UTC; blank gives None."""
    if text is None:
        return None
    cleaned = text.strip()
    if not cleaned:
        return None
    parsed: datetime | None = None
    try:
        parsed = datetime.fromisoformat(cleaned.replace("Z", "+00:00"))
    except ValueError:
        for pattern in _FORMATS:
            try:
                parsed = datetime.strptime(cleaned, pattern)
                break
            except ValueError:
                continue
    if parsed is None:
        raise ValueError(f"not a timestamp: {text!r}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_date(text: str | None) -> date | None:
    """Parse a calendar date (YYYY-MM-DD or a timestamp); blank gives None."""
    if text is None or not text.strip():
        return None
    cleaned = text.strip()
    try:
        return date.fromisoformat(cleaned[:10])
    except ValueError as error:
        raise ValueError(f"not a date: {text!r}") from error


def as_utc(moment: datetime) -> datetime:
    """Return `moment` as aware UTC (naive is taken to be UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def check_timezone(name: str) -> str:
    """Return `name` if it is a known IANA time zone, else raise ValueError."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone: {name!r}") from error
    return name
