"""The queue's tasks: the hourly dispatcher, one job for one store, the after-orders rescoring."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from huey import crontab
from huey.exceptions import CancelExecution, RetryTask
from sqlalchemy import Engine

from patronage.db.session import session_scope
from patronage.errors import PatronageError
from patronage.kit.clock import utcnow
from patronage.worker import jobs
from patronage.worker.queue import create_queue
from patronage.worker.schedule import due_jobs, schedule
from patronage.worker.settings import WorkerSettings, load_settings

logger = logging.getLogger("patronage.worker")

RETRIES = 5
RETRY_DELAY_SECONDS = 30
RETRY_BACKOFF = 2.0
LOCKED_DELAY_SECONDS = 30


@dataclass
class Worker:
    """A queue with the tasks registered on it, and the settings they run with."""

    huey: Any
    settings: WorkerSettings
    engine: Engine | None
    run_job: Any
    rescore_customers: Any
    dispatch: Any

    def enqueue_due(self, at: datetime | None = None) -> list[tuple[str, int]]:
        """Enqueue one task per (job, store) due in the hour of `at` (default: now)."""
        from patronage.stores.repository import list_stores

        moment = at or utcnow()
        with session_scope(self.engine) as session:
            stores = [(store.id, store.timezone) for store in list_stores(session)]
        due = due_jobs(schedule(self.settings), stores, moment)
        for name, store_id in due:
            self.run_job(name, store_id)
        logger.info("dispatched %d jobs for %d stores at %s", len(due), len(stores), moment)
        return due


def build_worker(settings: WorkerSettings, engine: Engine | None = None) -> Worker:
    """Create the queue from `settings` and register the tasks on it."""
    huey = create_queue(
        settings.resolved_queue_url(),
        name=settings.queue_name,
        result_ttl_seconds=settings.result_ttl_seconds,
    )
    ttl = settings.lock_ttl_seconds

    @huey.task(
        retries=RETRIES,
        retry_delay=RETRY_DELAY_SECONDS,
        retry_backoff=RETRY_BACKOFF,
        name="patronage.run_job",
    )
    def run_job(name: str, store_id: int) -> dict[str, Any]:
        try:
            result = jobs.run_job(
                name, store_id, huey=huey, lock_ttl_seconds=ttl, engine=worker.engine
            )
        except jobs.JobLockedError as error:
            # Wait for the holder without spending a retry: RetryTask keeps the count.
            logger.info("%s; trying again in %d s", error.detail, LOCKED_DELAY_SECONDS)
            raise RetryTask(delay=LOCKED_DELAY_SECONDS) from error
        except PatronageError as error:
            raise _refused(name, store_id, error) from error
        logger.info(result.text())
        return result.as_dict()

    @huey.task(
        retries=RETRIES,
        retry_delay=RETRY_DELAY_SECONDS,
        retry_backoff=RETRY_BACKOFF,
        name="patronage.rescore_customers",
    )
    def rescore_customers(
        store_id: int, customer_ids: list[int], changed_at: datetime
    ) -> dict[str, Any]:
        try:
            result = jobs.rescore_customers(
                store_id,
                customer_ids,
                changed_at=changed_at,
                huey=huey,
                lock_ttl_seconds=ttl,
                engine=worker.engine,
            )
        except jobs.JobLockedError as error:
            logger.info("%s; trying again in %d s", error.detail, LOCKED_DELAY_SECONDS)
            raise RetryTask(delay=LOCKED_DELAY_SECONDS) from error
        except PatronageError as error:
            raise _refused("rescore-customers", store_id, error) from error
        logger.info(result.text())
        return result.as_dict()

    @huey.periodic_task(crontab(minute="0"), name="patronage.dispatch")
    def dispatch() -> None:
        worker.enqueue_due()

    worker = Worker(huey, settings, engine, run_job, rescore_customers, dispatch)
    return worker


def _refused(job: str, store_id: int, error: PatronageError) -> CancelExecution:
    """A domain error (no such store, a bad program) would repeat on every retry: stop."""
    logger.error("%s store %d refused: %s (not retried)", job, store_id, error.detail)
    return CancelExecution(error.detail, retry=False)


@lru_cache(maxsize=1)
def get_worker() -> Worker:
    """The process's worker, configured from the environment."""
    return build_worker(load_settings())


def enqueue_rescore(
    store_id: int, customer_ids: Iterable[int], *, changed_at: datetime | None = None
) -> None:
    """Queue the rescoring of a store after `customer_ids`' orders changed.

    Call it after the commit that recorded the orders (their kept aggregates are refreshed in
    that transaction by `orders.service.upsert_orders`): a rolled-back change queues nothing.
    The task runs PATRONAGE_RESCORE_DELAY_SECONDS later, so a burst of orders in that time is
    covered by its first scoring and the others find nothing to do.
    """
    wanted = sorted({customer_id for customer_id in customer_ids if customer_id is not None})
    if wanted:
        worker = get_worker()
        worker.rescore_customers.schedule(
            args=(store_id, wanted, changed_at or utcnow()),
            delay=worker.settings.rescore_delay_seconds,
        )
