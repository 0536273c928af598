"""Each job does its work on a real database (SQLite and PostgreSQL) as the clock moves, and a
second run in the same moment changes nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from patronage.db.session import session_scope
from patronage.kit.clock import FrozenClock, utcnow
from patronage.loyalty import repository as loyalty_repository
from patronage.loyalty.ledger import verify
from patronage.loyalty.referrals import record_referral, referral_code
from patronage.loyalty.schemas import PointsIn
from patronage.loyalty.service import change_points, member_summary
from patronage.stores.models import Store
from patronage.stores.service import NewStore
from patronage.worker import jobs
from patronage.worker.jobs import JobResult
from tests.worker.conftest import LOCK_TTL, START, customer_id, make_order, record_orders


def run(name: str, store_id: int, queue: Any, engine: Engine) -> dict[str, Any]:
    return jobs.run_job(
        name, store_id, huey=queue, lock_ttl_seconds=LOCK_TTL, engine=engine
    ).details


def summary(engine: Engine, store_id: int, customer: int) -> Any:
    with session_scope(engine) as session:
        return member_summary(session, store_id=store_id, customer_id=customer)


def test_activate_points_after_the_return_window(
    engine: Engine, loyal_store: Store, clock: FrozenClock, sqlite_queue: Any
) -> None:
    record_orders(engine, loyal_store.id, make_order("1", "ana@example.com", delivered_at=START))
    ana = customer_id(engine, loyal_store.id, "ana@example.com")
    pending = summary(engine, loyal_store.id, ana).pending
    assert pending > 0
    clock.advance(timedelta(days=29))
    assert run("activate-points", loyal_store.id, sqlite_queue, engine)["activated"] == 0
    clock.advance(timedelta(days=2))
    details = run("activate-points", loyal_store.id, sqlite_queue, engine)
    assert (details["activated"], details["members"]) == (pending, 1)
    assert run("activate-points", loyal_store.id, sqlite_queue, engine)["activated"] == 0
    after = summary(engine, loyal_store.id, ana)
    assert (after.available, after.pending) == (pending, 0)


def test_activate_points_pays_due_referral_rewards(
    engine: Engine, loyal_store: Store, clock: FrozenClock, sqlite_queue: Any
) -> None:
    record_orders(engine, loyal_store.id, make_order("h1", "host@example.com"))
    host = customer_id(engine, loyal_store.id, "host@example.com")
    with session_scope(engine) as session:
        code = referral_code(session, store_id=loyal_store.id, customer_id=host)
    record_orders(
        engine,
        loyal_store.id,
        make_order("f1", "friend@example.com", delivered_at=START + timedelta(days=1)),
    )
    friend = customer_id(engine, loyal_store.id, "friend@example.com")
    with session_scope(engine) as session:
        outcome = record_referral(
            session, store_id=loyal_store.id, code=code, referred_customer_id=friend, source="x"
        )
    assert outcome.status == "pending", outcome.reason
    clock.advance(timedelta(days=10))
    assert run("activate-points", loyal_store.id, sqlite_queue, engine)["referrals_rewarded"] == 0
    clock.advance(timedelta(days=30))
    assert run("activate-points", loyal_store.id, sqlite_queue, engine)["referrals_rewarded"] == 1
    assert run("activate-points", loyal_store.id, sqlite_queue, engine)["referrals_rewarded"] == 0
    with session_scope(engine) as session:
        assert verify(session, loyal_store.id).ok


def test_expire_points_reminds_then_expires(
    engine: Engine, loyal_store: Store, clock: FrozenClock, sqlite_queue: Any
) -> None:
    record_orders(engine, loyal_store.id, make_order("1", "ana@example.com"))
    ana = customer_id(engine, loyal_store.id, "ana@example.com")
    with session_scope(engine) as session:
        change_points(
            session,
            store_id=loyal_store.id,
            customer_id=ana,
            points_in=PointsIn(kind="earn", points=600, reason="welcome"),
            idempotency_key="welcome",
        )
    expires = START.replace(year=START.year + 1)
    clock.advance(expires - START - timedelta(days=30))

    def reminders() -> list[int]:
        with session_scope(engine) as session:
            notices = loyalty_repository.notices_of(session, loyal_store.id)
        return [n["payload"]["days_before"] for n in notices if n["kind"] == "points_expiring"]

    assert run("expire-points", loyal_store.id, sqlite_queue, engine)["expired"] == 0
    run("expire-points", loyal_store.id, sqlite_queue, engine)
    assert reminders() == [30]  # the second run sends nothing new
    clock.advance(timedelta(days=30, hours=1))
    assert run("expire-points", loyal_store.id, sqlite_queue, engine)["expired"] == 600
    assert run("expire-points", loyal_store.id, sqlite_queue, engine)["expired"] == 0
    assert summary(engine, loyal_store.id, ana).available == 0


def test_evaluate_tiers_reviews_once_per_period_then_downgrades_after_grace(
    engine: Engine, loyal_store: Store, clock: FrozenClock, sqlite_queue: Any
) -> None:
    record_orders(engine, loyal_store.id, make_order("1", "ana@example.com"))
    ana = customer_id(engine, loyal_store.id, "ana@example.com")
    with session_scope(engine) as session:
        member = loyalty_repository.member_ids_by_customer(session, loyal_store.id, [ana])[ana]
        loyalty_repository.update_members(
            session, [{"member_id": member, "tier": "gold", "tier_since_at": START}]
        )
    first = run("evaluate-tiers", loyal_store.id, sqlite_queue, engine)
    assert (first["members"], first["warned"], first["downgraded"]) == (1, 1, 0)
    clock.advance(timedelta(days=1))
    again = run("evaluate-tiers", loyal_store.id, sqlite_queue, engine)
    assert (again["warned"], again["downgraded"]) == (0, 0)  # reviewed already this quarter
    clock.advance(timedelta(days=61))  # past the grace, in the next quarter
    later = run("evaluate-tiers", loyal_store.id, sqlite_queue, engine)
    assert later["downgraded"] == 1
    assert run("evaluate-tiers", loyal_store.id, sqlite_queue, engine)["downgraded"] == 0
    assert summary(engine, loyal_store.id, ana).tier.name != "gold"


def test_loyalty_jobs_skip_a_store_without_a_program(
    engine: Engine, committed_store: NewStore, clock: FrozenClock, sqlite_queue: Any
) -> None:
    store_id = committed_store.store.id
    assert run("evaluate-tiers", store_id, sqlite_queue, engine) == {
        "skipped": "no membership program"
    }
    assert run("activate-points", store_id, sqlite_queue, engine)["activated"] == 0
    assert run("expire-points", store_id, sqlite_queue, engine)["expired"] == 0


def _scores(engine: Engine, store_id: int) -> dict[int, dict[str, Any]]:
    from patronage.analytics.repository import store_scores

    with session_scope(engine) as session:
        return {row["customer_id"]: row for row in store_scores(session, store_id)}


def test_rescore_scores_every_customer_and_is_repeatable(
    engine: Engine, committed_store: NewStore, clock: FrozenClock, sqlite_queue: Any
) -> None:
    store_id = committed_store.store.id
    record_orders(
        engine,
        store_id,
        make_order("1", "ana@example.com"),
        make_order("2", "ana@example.com", placed_at=START + timedelta(days=20)),
        make_order("3", "ben@example.com", placed_at=START + timedelta(days=5)),
    )
    clock.advance(timedelta(days=40))
    assert run("rescore", store_id, sqlite_queue, engine)["customers"] == 2
    first = _scores(engine, store_id)
    ana = customer_id(engine, store_id, "ana@example.com")
    assert first[ana]["order_count"] == 2
    assert run("rescore", store_id, sqlite_queue, engine)["customers"] == 2
    again = _scores(engine, store_id)
    ignored = {"computed_at", "as_of"}

    def comparable(rows: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
        return {
            key: {name: value for name, value in row.items() if name not in ignored}
            for key, row in rows.items()
        }

    assert comparable(again) == comparable(first)


def test_rescore_customers_after_new_orders_scores_them_once(
    engine: Engine, committed_store: NewStore, clock: FrozenClock, sqlite_queue: Any
) -> None:
    store_id = committed_store.store.id
    record_orders(engine, store_id, make_order("1", "ana@example.com"))
    clock.advance(timedelta(days=1))
    run("rescore", store_id, sqlite_queue, engine)
    clock.advance(timedelta(days=1))
    record_orders(
        engine, store_id, make_order("2", "cai@example.com", placed_at=START + timedelta(days=2))
    )
    cai = customer_id(engine, store_id, "cai@example.com")
    assert cai not in _scores(engine, store_id)
    changed_at = utcnow()
    clock.advance(timedelta(seconds=1))

    def rescore() -> JobResult:
        return jobs.rescore_customers(
            store_id,
            [cai],
            changed_at=changed_at,
            huey=sqlite_queue,
            lock_ttl_seconds=LOCK_TTL,
            engine=engine,
        )

    details = rescore().details
    assert (details["mode"], details["scored"]) == ("full", 2)  # a new day: a new as-of
    assert _scores(engine, store_id)[cai]["order_count"] == 1
    # A second task for the same change finds the store scored since, and does nothing.
    assert rescore().details["skipped"] == "scored since the change"

    # Later the same day, a new order is scored selectively: only what it can change.
    clock.advance(timedelta(hours=2))
    record_orders(engine, store_id, make_order("3", "cai@example.com", placed_at=utcnow()))
    changed_at = utcnow()
    clock.advance(timedelta(seconds=1))
    details = rescore().details
    assert details["mode"] == "selective", details
    assert _scores(engine, store_id)[cai]["order_count"] == 2


def test_an_unknown_job_or_store_is_a_clear_error(
    engine: Engine, committed_store: NewStore, sqlite_queue: Any
) -> None:
    from patronage.errors import NotFoundError

    with pytest.raises(NotFoundError, match="no job 'nope'; jobs: activate-points"):
        run("nope", committed_store.store.id, sqlite_queue, engine)
    with pytest.raises(NotFoundError, match="store 987654 does not exist"):
        run("rescore", 987654, sqlite_queue, engine)
