"""The jobs: one store each, idempotent, run under the store's lock in one unit of work."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from huey.exceptions import TaskLockedException
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from patronage.db.session import session_scope
from patronage.errors import ConflictError, NotFoundError
from patronage.kit.clock import utcnow
from patronage.worker.queue import store_lock

LOYALTY = "loyalty"
ANALYTICS = "analytics"


class JobLockedError(ConflictError):
    """The same store's job (or one of its group) is running elsewhere."""


@dataclass(frozen=True)
class Job:
    """A job the worker runs for one store."""

    name: str
    lock: str
    description: str
    run: Callable[[Session, int, datetime], dict[str, Any]]


@dataclass
class JobResult:
    """What one run of a job did for one store."""

    job: str
    store_id: int
    started_at: datetime
    seconds: float
    cpu_seconds: float
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Return the result as JSON-ready values."""
        return {
            "job": self.job,
            "store_id": self.store_id,
            "started_at": self.started_at.isoformat(),
            "seconds": round(self.seconds, 3),
            "cpu_seconds": round(self.cpu_seconds, 3),
            "details": self.details,
        }

    def text(self) -> str:
        """One line for people and logs."""
        parts = ", ".join(f"{key} {value}" for key, value in self.details.items())
        return (
            f"{self.job} store {self.store_id}: {parts or 'done'} "
            f"({self.seconds:.2f} s, {self.cpu_seconds:.2f} s CPU)"
        )


def _activate_points(session: Session, store_id: int, now: datetime) -> dict[str, Any]:
    from patronage.loyalty.orders import activate_due

    summary = activate_due(session, store_id, now)
    return {
        "members": summary.members,
        "activated": summary.activated,
        "referrals_rewarded": summary.referrals_rewarded,
    }


def _expire_points(session: Session, store_id: int, now: datetime) -> dict[str, Any]:
    from patronage.loyalty.orders import expire_due

    summary = expire_due(session, store_id, now)
    return {"members": summary.members, "expired": summary.expired, "reminders": summary.reminders}


def _evaluate_tiers(session: Session, store_id: int, now: datetime) -> dict[str, Any]:
    from patronage.loyalty.errors import ProgramNotConfiguredError
    from patronage.loyalty.tiers import evaluate_tiers

    try:
        changes = evaluate_tiers(session, store_id, now)
    except ProgramNotConfiguredError:
        return {"skipped": "no membership program"}
    return {
        "members": changes.members,
        "upgraded": len(changes.upgraded),
        "downgraded": len(changes.downgraded),
        "warned": len(changes.warned),
        "heritage": len(changes.heritage),
    }


def scoring_as_of(now: datetime, timezone: str) -> datetime:
    """The moment scores are computed as of: the end of the store's current local day (UTC).

    Every rescoring of one day shares it, so the rescorings after new orders can take the
    selective path (`analytics.service.rescore_customers`) instead of scoring the whole store
    again; an order placed that day has a recency of 0 days.
    """
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), zone)
    return midnight.astimezone(UTC)


def _rescore(session: Session, store_id: int, now: datetime) -> dict[str, Any]:
    from patronage.analytics.service import rescore_store
    from patronage.stores.service import get_store

    as_of = scoring_as_of(now, get_store(session, store_id).timezone)
    summary = rescore_store(session, store_id, as_of=as_of)
    return {"customers": summary.customers, "engine": summary.engine, "as_of": as_of.isoformat()}


JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job(
            "activate-points",
            LOYALTY,
            "activate pending points past the return window; pay due referral rewards",
            _activate_points,
        ),
        Job(
            "expire-points",
            LOYALTY,
            "expire lapsed points; queue the reminders of points about to lapse",
            _expire_points,
        ),
        Job(
            "evaluate-tiers",
            LOYALTY,
            "refresh rolling figures and tiers; review members due per the program's cadence",
            _evaluate_tiers,
        ),
        Job(
            "rescore",
            ANALYTICS,
            "rebuild every customer's aggregates and scores",
            _rescore,
        ),
    )
}


def get_job(name: str) -> Job:
    """The job called `name`, or NotFoundError listing the known ones."""
    job = JOBS.get(name)
    if job is None:
        raise NotFoundError(f"no job {name!r}; jobs: {', '.join(JOBS)}")
    return job


def _locked(
    huey: Any, group: str, store_id: int, ttl_seconds: int, what: str, work: Callable[[], Any]
) -> Any:
    try:
        with store_lock(huey, group, store_id, ttl_seconds):
            return work()
    except TaskLockedException as error:
        raise JobLockedError(
            f"{what} for store {store_id} is already running ({group} lock held)"
        ) from error


def run_job(
    name: str, store_id: int, *, huey: Any, lock_ttl_seconds: int, engine: Engine | None = None
) -> JobResult:
    """Run job `name` for one store now, under its lock, in one transaction."""
    job = get_job(name)
    started_at = utcnow()
    wall, cpu = time.perf_counter(), time.process_time()

    def work() -> dict[str, Any]:
        with session_scope(engine) as session:
            _require_store(session, store_id)
            return job.run(session, store_id, utcnow())

    details = _locked(huey, job.lock, store_id, lock_ttl_seconds, name, work)
    return JobResult(
        name,
        store_id,
        started_at,
        time.perf_counter() - wall,
        time.process_time() - cpu,
        details,
    )


def rescore_customers(
    store_id: int,
    customer_ids: Iterable[int],
    *,
    changed_at: datetime,
    huey: Any,
    lock_ttl_seconds: int,
    engine: Engine | None = None,
) -> JobResult:
    """Bring the scores up to date after `customer_ids`' orders changed at `changed_at`.

    The customers' aggregates are refreshed, then the store is rescored as of the end of its
    day: selectively (only the customers whose score can have changed) when the stored scores
    are of the same day and settings, else every customer. A scoring that started after
    `changed_at` already saw the change, so a burst of orders costs one scoring.
    """
    from patronage.analytics.repository import last_scored_at
    from patronage.analytics.service import rescore_customers as rescore
    from patronage.stores.service import get_store

    wanted = sorted(set(customer_ids))
    started_at = utcnow()
    wall, cpu = time.perf_counter(), time.process_time()

    def work() -> dict[str, Any]:
        with session_scope(engine) as session:
            store = get_store(session, store_id)
            computed_at, _ = last_scored_at(session, store_id)
            if computed_at is not None and computed_at >= changed_at:
                return {"customers": len(wanted), "skipped": "scored since the change"}
            summary = rescore(
                session, store_id, wanted, as_of=scoring_as_of(utcnow(), store.timezone)
            )
            return {
                "customers": len(wanted),
                "mode": summary.mode,
                "reason": summary.reason,
                "rescored": summary.customers if summary.rescored is None else summary.rescored,
                "scored": summary.customers,
            }

    details = _locked(huey, ANALYTICS, store_id, lock_ttl_seconds, "rescore-customers", work)
    return JobResult(
        "rescore-customers",
        store_id,
        started_at,
        time.perf_counter() - wall,
        time.process_time() - cpu,
        details,
    )


def _require_store(session: Session, store_id: int) -> None:
    from patronage.stores.service import get_store

    get_store(session, store_id)
