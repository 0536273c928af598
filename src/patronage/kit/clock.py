"""An injectable clock so that tests can move time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    """The real wall clock, in UTC."""

    def now(self) -> datetime:
        """Return the current time, timezone-aware UTC."""
        return datetime.now(UTC)


class FrozenClock(Clock):
    """A clock that stands still until moved."""

    def __init__(self, at: datetime) -> None:
        self._at = at if at.tzinfo else at.replace(tzinfo=UTC)

    def now(self) -> datetime:
        """Return the frozen time."""
        return self._at

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward by `delta`."""
        self._at += delta


_clock: Clock = Clock()


def get_clock() -> Clock:
    """Return the process clock."""
    return _clock


def set_clock(clock: Clock) -> None:
    """Replace the process clock (tests)."""
    global _clock
    _clock = clock


def utcnow() -> datetime:
    """Return the current time from the process clock."""
    return _clock.now()
