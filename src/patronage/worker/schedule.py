"""The schedule: which job runs for which store at which hour.

The queue wakes a dispatcher at minute 0 of every UTC hour; it enqueues one task per (job,
store) due at that hour. Hourly jobs are due every hour; daily jobs at an hour of the store's
own time zone, so a store's night is its own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from patronage.worker.settings import WorkerSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Slot:
    """When a job runs: every hour, or daily at a local hour of each store."""

    job: str
    local_hour: int | None = None

    def describe(self) -> str:
        """The slot in words."""
        if self.local_hour is None:
            return "hourly, at minute 0 (UTC)"
        return f"daily, at {self.local_hour:02d}:00 in the store's time zone"


def schedule(settings: WorkerSettings) -> list[Slot]:
    """The schedule in force with these settings."""
    return [
        Slot("activate-points"),
        Slot("expire-points"),
        Slot("evaluate-tiers", settings.tiers_hour),
        Slot("rescore", settings.rescore_hour),
    ]


def local_hour(at: datetime, timezone: str | None) -> int:
    """The hour on the store's clock at `at` (UTC for an unknown zone)."""
    try:
        zone = ZoneInfo(timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        logger.warning("unknown time zone %r; using UTC", timezone)
        zone = ZoneInfo("UTC")
    return at.astimezone(zone).hour


def due_jobs(
    slots: Iterable[Slot], stores: Iterable[tuple[int, str | None]], at: datetime
) -> list[tuple[str, int]]:
    """The (job, store id) pairs due in the hour that contains `at`."""
    stores = list(stores)
    due: list[tuple[str, int]] = []
    for slot in slots:
        for store_id, timezone in stores:
            if slot.local_hour is None or local_hour(at, timezone) == slot.local_hour:
                due.append((slot.job, store_id))
    return due
