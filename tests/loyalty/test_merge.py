"""Merging two members folds the merged one's points into the survivor's, through the ledger."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from patronage.kit.clock import FrozenClock
from patronage.loyalty.ledger import verify
from patronage.loyalty.schemas import PointsIn
from patronage.loyalty.service import change_points, member_summary, merge_members
from patronage.stores.models import Store
from tests.loyalty.conftest import CustomerFactory
from tests.loyalty.test_orders import customer_of, make_order, record


def test_two_members_merge_through_the_ledger(
    session: Session, loyal_store: Store, make_customer: CustomerFactory, clock: FrozenClock
) -> None:
    survivor = make_customer(email="keep@example.com")
    change_points(
        session,
        store_id=loyal_store.id,
        customer_id=survivor,
        points_in=PointsIn(kind="earn", points=100, reason="x"),
        idempotency_key="a",
    )
    record(session, loyal_store, make_order(email="gone@example.com"))  # 1,000 pending
    merged = customer_of(session, loyal_store, "gone@example.com")
    clock.advance(timedelta(days=10))
    change_points(
        session,
        store_id=loyal_store.id,
        customer_id=merged,
        points_in=PointsIn(kind="earn", points=300, reason="y"),
        idempotency_key="b",
    )
    moved = merge_members(
        session,
        store_id=loyal_store.id,
        surviving_customer_id=survivor,
        merged_customer_id=merged,
    )
    assert moved == 1300
    kept = member_summary(session, store_id=loyal_store.id, customer_id=survivor)
    gone = member_summary(session, store_id=loyal_store.id, customer_id=merged)
    assert (kept.available, kept.pending) == (400, 1000)
    assert (gone.available, gone.pending) == (0, 0)
    assert kept.expiring_soon == []
    assert verify(session, loyal_store.id).ok


def test_a_single_membership_follows_the_survivor(
    session: Session, loyal_store: Store, make_customer: CustomerFactory
) -> None:
    survivor = make_customer(email="keep@example.com")
    merged = make_customer(email="gone@example.com")
    change_points(
        session,
        store_id=loyal_store.id,
        customer_id=merged,
        points_in=PointsIn(kind="earn", points=50, reason="y"),
        idempotency_key="b",
    )
    merge_members(
        session,
        store_id=loyal_store.id,
        surviving_customer_id=survivor,
        merged_customer_id=merged,
    )
    assert member_summary(session, store_id=loyal_store.id, customer_id=survivor).available == 50
