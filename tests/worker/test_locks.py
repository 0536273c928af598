"""A store's job never runs twice at once: the second run is refused while the first holds the
lock, on the SQLite queue and on Redis; other stores and later runs go ahead."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from patronage.stores.service import NewStore
from patronage.worker import jobs
from patronage.worker.jobs import JOBS, Job, JobLockedError
from patronage.worker.queue import flush_store_locks, store_lock
from tests.worker.conftest import LOCK_TTL


@pytest.fixture(params=["sqlite_queue", "redis_queue"])
def queue(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(request.param)


def test_a_running_job_locks_out_a_second_run_of_the_same_store(
    engine: Engine, committed_store: NewStore, queue: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_id = committed_store.store.id
    started, release = threading.Event(), threading.Event()
    runs: list[int] = []

    def slow(session: Session, store: int, now: datetime) -> dict[str, Any]:
        runs.append(store)
        started.set()
        assert release.wait(timeout=60)
        return {"ran": True}

    monkeypatch.setitem(JOBS, "slow", Job("slow", jobs.LOYALTY, "waits", slow))
    monkeypatch.setitem(JOBS, "quick", Job("quick", jobs.LOYALTY, "returns", lambda *_: {}))

    def run(name: str = "slow") -> jobs.JobResult:
        return jobs.run_job(name, store_id, huey=queue, lock_ttl_seconds=LOCK_TTL, engine=engine)

    outcome: list[Any] = []
    first = threading.Thread(target=lambda: outcome.append(run()))
    first.start()
    try:
        assert started.wait(timeout=60)
        with pytest.raises(JobLockedError, match=f"slow for store {store_id} is already running"):
            run()
        # Jobs of the same group share the lock: they touch the same ledger.
        with pytest.raises(JobLockedError):
            run("quick")
    finally:
        release.set()
        first.join(timeout=60)
    assert outcome[0].details == {"ran": True}
    assert runs == [store_id]
    assert run("quick").details == {}  # released once the first run ended


def test_a_failing_job_releases_its_lock(
    engine: Engine, committed_store: NewStore, queue: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(session: Session, store: int, now: datetime) -> dict[str, Any]:
        raise RuntimeError("boom")

    monkeypatch.setitem(JOBS, "broken", Job("broken", jobs.ANALYTICS, "fails", broken))
    store_id = committed_store.store.id
    for _ in range(2):
        with pytest.raises(RuntimeError, match="boom"):
            jobs.run_job("broken", store_id, huey=queue, lock_ttl_seconds=LOCK_TTL, engine=engine)


def test_locks_are_per_store(sqlite_queue: Any) -> None:
    with (
        store_lock(sqlite_queue, jobs.LOYALTY, 1, LOCK_TTL),
        store_lock(sqlite_queue, jobs.LOYALTY, 2, LOCK_TTL),
    ):
        assert sqlite_queue.is_locked("loyalty:store:1")
    assert not sqlite_queue.is_locked("loyalty:store:1")


def test_stale_locks_of_a_sqlite_queue_are_released(sqlite_queue: Any) -> None:
    store_lock(sqlite_queue, jobs.ANALYTICS, 7, LOCK_TTL).acquire()  # a crashed holder
    assert flush_store_locks(sqlite_queue) == ["analytics:store:7"]
    assert not sqlite_queue.is_locked("analytics:store:7")


def test_redis_locks_lapse_after_their_time_to_live(redis_queue: Any) -> None:
    import redis

    store_lock(redis_queue, jobs.ANALYTICS, 7, 120).acquire()
    key = redis_queue.storage.result_key(f"{redis_queue.name}.lock.analytics:store:7")
    client: redis.Redis = redis_queue.storage.conn
    assert 0 < int(client.ttl(key)) <= 120
