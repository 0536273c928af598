"""The consumer: threads that run queued tasks, and the scheduler that wakes the dispatcher."""

from __future__ import annotations

import logging
import signal
from typing import Any

from huey.consumer import Consumer

from patronage.worker.queue import flush_store_locks, locks_expire
from patronage.worker.tasks import Worker

logger = logging.getLogger("patronage.worker")


class GracefulConsumer(Consumer):
    """huey's consumer, stopping gracefully on SIGTERM as on SIGINT.

    huey treats SIGTERM as "stop now"; service managers send SIGTERM to ask for a clean stop,
    so both let the running jobs finish (a second signal interrupts them).
    """

    def _set_signal_handlers(self) -> None:
        self._signal_actions[signal.SIGTERM] = (False, True)
        self._signal_actions[signal.SIGINT] = (False, True)
        super()._set_signal_handlers()


def create_consumer(worker: Worker, *, workers: int, scheduler: bool = True) -> Any:
    """A consumer of the worker's queue with `workers` threads (and the scheduler if asked).

    A SQLite queue cannot let locks lapse, so the locks a crashed worker left are released
    here; the embedded default runs one worker process, which makes that safe.
    """
    if not locks_expire(worker.huey):
        released = flush_store_locks(worker.huey)
        if released:
            logger.warning("released stale locks: %s", ", ".join(released))
    return GracefulConsumer(
        worker.huey,
        workers=workers,
        periodic=scheduler,
        worker_type="thread",
        check_worker_health=True,
    )
