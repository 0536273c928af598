"""A real consumer (`patronage worker` in a subprocess) takes queued jobs from Redis, or from the
embedded SQLite queue, does their work in the database, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from patronage.analytics.repository import store_scores
from patronage.db.session import session_scope
from patronage.kit.clock import Clock, FrozenClock, get_clock, set_clock
from patronage.loyalty.program import default_program, set_program
from patronage.loyalty.schemas import PointsIn
from patronage.loyalty.service import change_points, member_summary
from patronage.stores.service import NewStore
from patronage.worker.settings import WorkerSettings
from patronage.worker.tasks import build_worker
from tests.worker.conftest import customer_id, make_order, record_orders

LONG_AGO = datetime.now(UTC) - timedelta(days=800)


@pytest.fixture
def long_ago() -> Iterator[FrozenClock]:
    """The clock 800 days back while the test sets up; the consumer runs on the real clock."""
    previous: Clock = get_clock()
    frozen = FrozenClock(LONG_AGO)
    set_clock(frozen)
    try:
        yield frozen
    finally:
        set_clock(previous)


@pytest.fixture(params=["redis", "sqlite"])
def queue_url(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """The queue's URL and name: the test Redis, or a SQLite file."""
    if request.param == "redis":
        return request.getfixturevalue("redis_url"), request.getfixturevalue("redis_queue_name")
    return f"sqlite:///{tmp_path / 'queue.db'}", "test"


def test_the_consumer_runs_queued_jobs_and_stops_on_sigterm(
    engine: Engine,
    database_url: str,
    committed_store: NewStore,
    queue_url: tuple[str, str],
    long_ago: FrozenClock,
    tmp_path: Path,
) -> None:
    store_id = committed_store.store.id
    with session_scope(engine) as session:
        set_program(session, store_id, default_program(), source="test")
    record_orders(engine, store_id, make_order("1", "ana@example.com", placed_at=LONG_AGO))
    ana = customer_id(engine, store_id, "ana@example.com")
    with session_scope(engine) as session:
        change_points(
            session,
            store_id=store_id,
            customer_id=ana,
            points_in=PointsIn(kind="earn", points=600, reason="welcome"),
            idempotency_key="welcome",
        )
    set_clock(Clock())
    url, name = queue_url
    worker = build_worker(WorkerSettings(queue_url=url, queue_name=name), engine=engine)
    worker.run_job("expire-points", store_id)
    worker.rescore_customers(store_id, [ana], datetime.now(UTC))
    assert len(worker.huey) == 2

    environment = {
        **os.environ,
        "PATRONAGE_DATABASE_URL": database_url,
        "PATRONAGE_QUEUE_URL": url,
        "PATRONAGE_QUEUE_NAME": name,
    }
    log = tmp_path / "worker.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from patronage.cli.main import app; app()",
                "worker",
                "--workers",
                "2",
                "--no-scheduler",
            ],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            done = False
            for _ in range(1800):  # bounded: a few minutes at most, even on a loaded machine
                with session_scope(engine) as session:
                    available = member_summary(
                        session, store_id=store_id, customer_id=ana
                    ).available
                    scored = [row["customer_id"] for row in store_scores(session, store_id)]
                if available == 0 and scored == [ana] and len(worker.huey) == 0:
                    done = True
                    break
                if process.poll() is not None:
                    break
                time.sleep(0.1)
            assert done, log.read_text()
        finally:
            process.send_signal(signal.SIGTERM)
            returncode = process.wait(timeout=60)
    text = log.read_text()
    assert returncode == 0, text
    assert f"expire-points store {store_id}: members 1, expired 600" in text
    assert f"rescore-customers store {store_id}: customers 1, mode full" in text
    assert "rescored 1, scored 1" in text
    assert "Shutting down gracefully" in text


def _start_worker(database_url: str, url: str, name: str, log: Path) -> subprocess.Popen[bytes]:
    environment = {
        **os.environ,
        "PATRONAGE_DATABASE_URL": database_url,
        "PATRONAGE_QUEUE_URL": url,
        "PATRONAGE_QUEUE_NAME": name,
    }
    command = "from patronage.cli.main import app; app()"
    return subprocess.Popen(
        [sys.executable, "-c", command, "worker", "--workers", "1", "--no-scheduler"],
        env=environment,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_lets_the_running_job_finish(
    engine: Engine, database_url: str, committed_store: NewStore, tmp_path: Path, stop: int
) -> None:
    store_id = committed_store.store.id
    record_orders(engine, store_id, make_order("1", "ana@example.com"))
    url, name = f"sqlite:///{tmp_path / 'queue.db'}", "test"
    worker = build_worker(WorkerSettings(queue_url=url, queue_name=name), engine=engine)
    worker.run_job("rescore", store_id)
    log = tmp_path / "worker.log"
    process = _start_worker(database_url, url, name, log)
    try:
        for _ in range(3600):  # bounded: wait (up to about 3 minutes) for the job to start
            if re.search(r"Executing \S*run_job", log.read_text()) or process.poll() is not None:
                break
            time.sleep(0.05)
        process.send_signal(stop)
        returncode = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    text = log.read_text()
    assert returncode == 0, text
    # The signal came while the job ran (it compiles its queries for over a second), and the
    # job still finished and committed before the consumer exited.
    assert text.index("Received SIG") < text.index(f"rescore store {store_id}: customers 1")
    assert text.index("Shutting down gracefully") < text.index("Consumer exiting")
    ana = customer_id(engine, store_id, "ana@example.com")
    with session_scope(engine) as session:
        assert [row["customer_id"] for row in store_scores(session, store_id)] == [ana]
