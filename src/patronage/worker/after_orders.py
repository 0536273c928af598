"""Queue the rescoring of customers whose orders changed, once their transaction has committed.

`orders.service` notes in the session which customers' orders a transaction changed
(`orders.service.changed_customers`); a process that serves the API or imports files calls
`enable_rescore_after_orders()` and, after every commit that noted some, one rescoring task per
store is queued (`worker.tasks.enqueue_rescore`). A rolled-back transaction queues nothing, and a
queue that cannot be reached is logged, never an error of the request that changed the orders:
the nightly rescoring catches up.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, SessionTransaction

from patronage.orders.service import forget_changed_customers, take_changed_customers
from patronage.worker.settings import WorkerSettings, default_queue_path, load_settings

logger = logging.getLogger("patronage.worker")

_enabled: list[WorkerSettings] = []


def enable_rescore_after_orders(settings: WorkerSettings | None = None) -> bool:
    """Queue a rescoring after each commit that changed orders; False when switched off."""
    chosen = settings or load_settings()
    if not chosen.rescore_after_orders:
        return False
    if not _enabled:
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_soft_rollback", _after_rollback)
    _enabled[:] = [chosen]
    return True


def disable_rescore_after_orders() -> None:
    """Stop queueing rescorings after commits (tests, and processes that switch it off)."""
    if _enabled:
        event.remove(Session, "after_commit", _after_commit)
        event.remove(Session, "after_soft_rollback", _after_rollback)
        _enabled.clear()


@contextmanager
def rescoring_after_orders() -> Iterator[None]:
    """Within the block, queue a rescoring after each commit that changed orders."""
    previous = list(_enabled)
    enable_rescore_after_orders()
    try:
        yield
    finally:
        disable_rescore_after_orders()
        if previous:
            enable_rescore_after_orders(previous[0])


def queue_url_for(settings: WorkerSettings, database_url: str) -> str | None:
    """The queue a commit on `database_url` reports to, or None when none is configured.

    PATRONAGE_QUEUE_URL when set; else the SQLite file beside a SQLite database file (where the
    worker of that database looks); else none — a PostgreSQL store names its queue explicitly.
    """
    if settings.queue_url:
        return settings.queue_url
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return f"sqlite:///{default_queue_path(database_url)}"


def _after_commit(session: Session) -> None:
    if session.get_nested_transaction() is not None:  # a savepoint released; the rest goes on
        return
    changed = take_changed_customers(session)
    if not changed or not _enabled:
        return
    bind = session.get_bind()
    queue_url = queue_url_for(_enabled[0], bind.engine.url.render_as_string(hide_password=False))
    if queue_url is None:
        logger.debug("no queue configured for %s: scores wait for the nightly run", bind)
        return
    for store_id, customer_ids in changed.items():
        try:
            _queue(queue_url).enqueue(store_id, customer_ids)
        except Exception:  # the orders are committed; the nightly rescoring will catch up
            logger.exception("could not queue the rescoring of store %d", store_id)


def _after_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    if previous_transaction.parent is None:  # the whole transaction, not a savepoint
        forget_changed_customers(session)


class _Queue:
    """The rescoring task of one queue."""

    def __init__(self, settings: WorkerSettings) -> None:
        from patronage.worker.tasks import build_worker

        self.worker = build_worker(settings)

    def enqueue(self, store_id: int, customer_ids: set[int]) -> None:
        """Queue the rescoring of these customers of the store."""
        from patronage.kit.clock import utcnow

        self.worker.rescore_customers.schedule(
            args=(store_id, sorted(customer_ids), utcnow()),
            delay=self.worker.settings.rescore_delay_seconds,
        )


@lru_cache(maxsize=8)
def _queue(queue_url: str) -> _Queue:
    return _Queue(_enabled[0].model_copy(update={"queue_url": queue_url}))
