"""The queue's tasks: the dispatcher enqueues one task per due (job, store); a locked job waits
without spending a retry; a failing job is retried with a growing delay; enqueue_rescore queues
one task per call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from patronage.stores.service import NewStore
from patronage.worker import jobs
from patronage.worker.jobs import JOBS, Job
from patronage.worker.queue import store_lock
from patronage.worker.settings import WorkerSettings
from patronage.worker.tasks import (
    LOCKED_DELAY_SECONDS,
    RETRIES,
    RETRY_DELAY_SECONDS,
    Worker,
    build_worker,
)


@pytest.fixture(params=["sqlite", "redis"])
def worker(request: pytest.FixtureRequest, engine: Engine, tmp_path: Any) -> Worker:
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        name = request.getfixturevalue("redis_queue_name")
    else:
        url, name = f"sqlite:///{tmp_path / 'queue.db'}", "test"
    return build_worker(WorkerSettings(queue_url=url, queue_name=name), engine=engine)


def pending(worker: Worker) -> list[tuple[str, tuple[Any, ...]]]:
    return [(task.name, task.args) for task in worker.huey.pending()]


def test_the_dispatcher_enqueues_the_jobs_due_in_the_stores_hour(
    worker: Worker, committed_store: NewStore
) -> None:
    store_id = committed_store.store.id  # Asia/Shanghai, UTC+8
    three_in_shanghai = datetime(2026, 6, 1, 19, 0, tzinfo=UTC)
    due = worker.enqueue_due(three_in_shanghai)
    ours = sorted(name for name, store in due if store == store_id)
    assert ours == ["activate-points", "expire-points", "rescore"]
    assert sorted(pending(worker)) == sorted(("patronage.run_job", job) for job in due)
    worker.huey.flush()
    one_in_shanghai = datetime(2026, 6, 1, 17, 0, tzinfo=UTC)
    ours = sorted(name for name, store in worker.enqueue_due(one_in_shanghai) if store == store_id)
    assert ours == ["activate-points", "evaluate-tiers", "expire-points"]


def test_the_dispatcher_wakes_at_minute_zero_of_every_utc_hour(worker: Worker) -> None:
    wakes = worker.dispatch.task_class().validate_datetime
    day = [datetime(2026, 6, 1, hour, minute) for hour in range(24) for minute in range(60)]
    assert [at for at in day if wakes(at)] == [datetime(2026, 6, 1, hour) for hour in range(24)]
    assert worker.huey.utc  # huey hands the scheduler UTC times


def test_a_queued_job_runs_when_the_consumer_takes_it(
    worker: Worker, committed_store: NewStore
) -> None:
    worker.run_job("rescore", committed_store.store.id)
    task = worker.huey.dequeue()
    result = worker.huey.execute(task)
    assert result["job"] == "rescore"
    assert result["store_id"] == committed_store.store.id
    assert len(worker.huey) == 0 and worker.huey.scheduled_count() == 0


def test_a_locked_job_waits_without_spending_a_retry(
    worker: Worker, committed_store: NewStore
) -> None:
    store_id = committed_store.store.id
    with store_lock(worker.huey, jobs.ANALYTICS, store_id, 600):
        worker.run_job("rescore", store_id)
        before = datetime.now(UTC)
        worker.huey.execute(worker.huey.dequeue())
    [waiting] = worker.huey.scheduled()
    assert waiting.retries == RETRIES
    assert waiting.eta >= (before + timedelta(seconds=LOCKED_DELAY_SECONDS - 1)).replace(
        tzinfo=None
    )


def test_a_failing_job_is_retried_with_a_growing_delay(
    worker: Worker, committed_store: NewStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(session: Session, store: int, now: datetime) -> dict[str, Any]:
        raise RuntimeError("database went away")

    monkeypatch.setitem(JOBS, "broken", Job("broken", jobs.ANALYTICS, "fails", broken))
    worker.run_job("broken", committed_store.store.id)
    delays = []
    for _ in range(RETRIES + 1):
        task = worker.huey.dequeue() or worker.huey.scheduled()[0]
        worker.huey.storage.flush_schedule()
        delays.append(task.retry_delay)
        task.eta = None  # the retry's time has come
        worker.huey.execute(task)
    assert delays == [RETRY_DELAY_SECONDS * 2**n for n in range(RETRIES + 1)]
    assert worker.huey.scheduled_count() == 0  # retries spent: given up, and logged


def test_a_domain_error_is_not_retried(worker: Worker) -> None:
    worker.run_job("rescore", 987_654)  # no such store: every retry would fail the same way
    worker.huey.execute(worker.huey.dequeue())
    assert len(worker.huey) == 0 and worker.huey.scheduled_count() == 0


def test_enqueue_rescore_schedules_one_task_with_the_customers_after_the_delay(
    redis_url: str, redis_queue_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from patronage.worker.tasks import enqueue_rescore, get_worker

    monkeypatch.setenv("PATRONAGE_QUEUE_URL", redis_url)
    monkeypatch.setenv("PATRONAGE_QUEUE_NAME", redis_queue_name)
    monkeypatch.setenv("PATRONAGE_RESCORE_DELAY_SECONDS", "90")
    get_worker.cache_clear()
    try:
        changed_at = datetime(2026, 6, 1, tzinfo=UTC)
        before = datetime.now(UTC).replace(tzinfo=None)
        enqueue_rescore(5, [3, 1, 3], changed_at=changed_at)
        enqueue_rescore(5, [])  # nothing changed: nothing queued
        [task] = get_worker().huey.pending()  # a worker that takes it early puts it aside
        assert (task.name, task.args) == ("patronage.rescore_customers", (5, [1, 3], changed_at))
        assert task.eta >= before + timedelta(seconds=89)
    finally:
        get_worker.cache_clear()
