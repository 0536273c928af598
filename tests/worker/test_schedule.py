"""Which (job, store) pairs are due in an hour: hourly jobs always, daily ones at the store's
local hour, half-hour time zones and daylight saving included."""

from __future__ import annotations

from datetime import UTC, datetime

from patronage.worker.schedule import Slot, due_jobs, local_hour, schedule
from patronage.worker.settings import WorkerSettings, default_queue_path

SLOTS = schedule(WorkerSettings(rescore_hour=3, tiers_hour=1))
STORES = [(1, "UTC"), (2, "Asia/Kolkata"), (3, "America/New_York"), (4, "Nowhere/Town")]


def daily(at: datetime) -> list[tuple[str, int]]:
    return [
        pair for pair in due_jobs(SLOTS, STORES, at) if pair[0] in ("rescore", "evaluate-tiers")
    ]


def test_hourly_jobs_are_due_for_every_store_every_hour() -> None:
    for hour in range(24):
        due = due_jobs(SLOTS, STORES, datetime(2026, 6, 1, hour, tzinfo=UTC))
        for job in ("activate-points", "expire-points"):
            assert sorted(store for name, store in due if name == job) == [1, 2, 3, 4]


def test_daily_jobs_are_due_once_a_day_at_the_store_local_hour() -> None:
    day = [datetime(2026, 6, 1, hour, tzinfo=UTC) for hour in range(24)]
    due = [pair for at in day for pair in daily(at)]
    assert sorted(due) == sorted(
        (job, store) for job in ("evaluate-tiers", "rescore") for store in (1, 2, 3, 4)
    )
    assert daily(datetime(2026, 6, 1, 3, tzinfo=UTC)) == [("rescore", 1), ("rescore", 4)]
    # 21:30 UTC is 03:00 in Kolkata (UTC+5:30); the dispatch at 21:00 UTC sees 02:30 there.
    assert daily(datetime(2026, 6, 1, 22, tzinfo=UTC)) == [("rescore", 2)]
    # New York is UTC-4 in summer and UTC-5 in winter.
    assert daily(datetime(2026, 6, 1, 7, tzinfo=UTC)) == [("rescore", 3)]
    assert daily(datetime(2026, 12, 1, 8, tzinfo=UTC)) == [("rescore", 3)]


def test_an_unknown_time_zone_counts_as_utc() -> None:
    assert local_hour(datetime(2026, 6, 1, 5, tzinfo=UTC), "Nowhere/Town") == 5
    assert local_hour(datetime(2026, 6, 1, 5, tzinfo=UTC), None) == 5


def test_slots_describe_themselves() -> None:
    assert Slot("x").describe() == "hourly, at minute 0 (UTC)"
    assert Slot("x", 3).describe() == "daily, at 03:00 in the store's time zone"


def test_the_default_queue_lives_beside_a_sqlite_database() -> None:
    assert str(default_queue_path("sqlite:////srv/shop/patronage.db")) == (
        "/srv/shop/patronage-queue.db"
    )
    assert str(default_queue_path("sqlite:///patronage.db")) == "patronage-queue.db"
    assert str(default_queue_path("postgresql+psycopg://db/p")) == "patronage-queue.db"
    settings = WorkerSettings(database_url="sqlite:////srv/p.db", queue_url=None)
    assert settings.resolved_queue_url() == "sqlite:////srv/p-queue.db"
    assert WorkerSettings(queue_url="redis://h:6379/2").resolved_queue_url() == "redis://h:6379/2"
