"""Referrals: a code per member, fraud checks that block and explain, the reward after the
friend's first order has passed the return window."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from patronage.customers.models import CustomerIdentity
from patronage.kit.clock import FrozenClock
from patronage.loyalty.ledger import verify
from patronage.loyalty.orders import activate_due
from patronage.loyalty.referrals import record_referral, referral_code
from patronage.loyalty.service import member_summary
from patronage.stores.models import Store
from tests.loyalty.conftest import START, CustomerFactory
from tests.loyalty.test_orders import make_order, record


def test_friend_first_order_past_the_window_rewards_the_referrer(
    session: Session, loyal_store: Store, make_customer: CustomerFactory, clock: FrozenClock
) -> None:
    referrer = make_customer(email="host@example.com")
    code = referral_code(session, store_id=loyal_store.id, customer_id=referrer)
    assert code == referral_code(session, store_id=loyal_store.id, customer_id=referrer)
    friend = make_customer(email="friend@example.com")
    outcome = record_referral(
        session, store_id=loyal_store.id, code=code, referred_customer_id=friend, source="1.2.3.4"
    )
    assert (outcome.status, outcome.reason) == ("pending", None)
    delivered = START + timedelta(days=10)
    record(
        session,
        loyal_store,
        make_order(email="friend@example.com", delivered_at=delivered, subtotal=Decimal(40)),
    )
    clock.advance(timedelta(days=20))
    assert activate_due(session, loyal_store.id, clock.now()).referrals_rewarded == 0
    clock.advance(timedelta(days=21))
    assert activate_due(session, loyal_store.id, clock.now()).referrals_rewarded == 1
    assert activate_due(session, loyal_store.id, clock.now()).referrals_rewarded == 0
    host = member_summary(session, store_id=loyal_store.id, customer_id=referrer)
    assert host.available == 500
    assert verify(session, loyal_store.id).ok


def test_self_referrals_are_blocked_with_the_reason(
    session: Session, loyal_store: Store, make_customer: CustomerFactory
) -> None:
    referrer = make_customer(
        email="host@example.com",
        phone="+4915112345678",
        attributes={"address": "Hauptstr. 5, 10115 Berlin"},
    )
    code = referral_code(session, store_id=loyal_store.id, customer_id=referrer)
    session.add(
        CustomerIdentity(
            store_id=loyal_store.id,
            customer_id=referrer,
            kind="anonymous_id",
            value="device-1",
            source="tracking",
            created_at=START,
        )
    )
    session.flush()
    cases: list[tuple[dict[str, Any], dict[str, str], str]] = [
        # Identity resolution already folds a shared phone into one customer: blocked either way.
        ({"phone": "+4915112345678"}, {}, "same"),
        ({"attributes": {"address": "hauptstr 5 10115 berlin"}}, {}, "same address"),
        ({}, {"device_id": "device-1"}, "same device"),
    ]
    for number, (profile, extra, reason) in enumerate(cases):
        friend = make_customer(email=f"f{number}@example.com", **profile)
        outcome = record_referral(
            session,
            store_id=loyal_store.id,
            code=code,
            referred_customer_id=friend,
            device_id=extra.get("device_id"),
        )
        assert outcome.status == "blocked" and reason in (outcome.reason or "")
    itself = record_referral(
        session, store_id=loyal_store.id, code=code, referred_customer_id=referrer
    )
    assert itself.status == "blocked" and "same customer" in (itself.reason or "")


def test_too_many_referrals_from_one_source_in_a_week(
    session: Session, loyal_store: Store, make_customer: CustomerFactory, clock: FrozenClock
) -> None:
    referrer = make_customer(email="host@example.com")
    code = referral_code(session, store_id=loyal_store.id, customer_id=referrer)
    statuses = []
    for number in range(4):
        friend = make_customer(email=f"n{number}@example.com")
        statuses.append(
            record_referral(
                session,
                store_id=loyal_store.id,
                code=code,
                referred_customer_id=friend,
                source="9.9.9.9",
            )
        )
    assert [s.status for s in statuses] == ["pending", "pending", "pending", "blocked"]
    assert "too many referrals" in (statuses[-1].reason or "")
    clock.advance(timedelta(days=8))
    later = make_customer(email="later@example.com")
    outcome = record_referral(
        session, store_id=loyal_store.id, code=code, referred_customer_id=later, source="9.9.9.9"
    )
    assert outcome.status == "pending"
