"""The jobs: expiry with three reminders, activation."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from patronage.kit.clock import FrozenClock
from patronage.loyalty import repository
from patronage.loyalty.ledger import verify
from patronage.loyalty.orders import expire_due
from patronage.loyalty.schemas import PointsIn
from patronage.loyalty.service import change_points, member_summary
from patronage.stores.models import Store
from tests.loyalty.conftest import START, CustomerFactory


def test_three_reminders_then_expiry(
    session: Session, loyal_store: Store, make_customer: CustomerFactory, clock: FrozenClock
) -> None:
    customer = make_customer()
    change_points(
        session,
        store_id=loyal_store.id,
        customer_id=customer,
        points_in=PointsIn(kind="earn", points=600, reason="x"),
        idempotency_key="e",
    )
    expires = START.replace(year=START.year + 1)

    def reminders() -> list[int]:
        return [
            n["payload"]["days_before"]
            for n in repository.notices_of(session, loyal_store.id)
            if n["kind"] == "points_expiring"
        ]

    clock.advance(expires - START - timedelta(days=40))
    expire_due(session, loyal_store.id, clock.now())
    assert reminders() == []
    for days_before in (30, 7, 1):
        clock.advance(expires - clock.now() - timedelta(days=days_before))
        expire_due(session, loyal_store.id, clock.now())
        expire_due(session, loyal_store.id, clock.now())  # a second run sends nothing new
    assert reminders() == [30, 7, 1]
    summary = member_summary(session, store_id=loyal_store.id, customer_id=customer)
    assert summary.expiring_soon[0].points == 600
    clock.advance(timedelta(days=1))
    result = expire_due(session, loyal_store.id, clock.now())
    assert result.expired == 600
    summary = member_summary(session, store_id=loyal_store.id, customer_id=customer)
    assert (summary.available, summary.expiring_soon) == (0, [])
    assert verify(session, loyal_store.id).ok
