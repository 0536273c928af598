"""The ledger: credits are lots, debits consume soonest-expiring first, balances derive from
entries, keys make mutations idempotent, and verify proves it all (and catches tampering)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from patronage.errors import NotFoundError
from patronage.kit.clock import FrozenClock
from patronage.loyalty import repository
from patronage.loyalty.errors import (
    IdempotencyKeyReusedError,
    InsufficientPointsError,
    ProgramNotConfiguredError,
)
from patronage.loyalty.ledger import verify
from patronage.loyalty.models import LedgerEntry, LotConsumption, LoyaltyMember, PointLot
from patronage.loyalty.schemas import PointsIn, RedemptionIn
from patronage.loyalty.service import change_points, member_summary, redeem
from patronage.stores.models import Store
from tests.loyalty.conftest import CustomerFactory


def earn(session: Session, store: Store, customer_id: int, points: int, key: str) -> int:
    result, _ = change_points(
        session,
        store_id=store.id,
        customer_id=customer_id,
        points_in=PointsIn(kind="earn", points=points, reason="test"),
        idempotency_key=key,
    )
    return result.available


def spend(session: Session, store: Store, customer_id: int, points: int, key: str) -> int:
    result, _ = change_points(
        session,
        store_id=store.id,
        customer_id=customer_id,
        points_in=PointsIn(kind="adjust", points=-points, reason="test"),
        idempotency_key=key,
    )
    return result.available


def test_credit_and_debit_keep_balances_and_verify(
    session: Session, loyal_store: Store, make_customer: CustomerFactory
) -> None:
    customer = make_customer()
    assert earn(session, loyal_store, customer, 700, "k1") == 700
    assert spend(session, loyal_store, customer, 200, "k2") == 500
    summary = member_summary(session, store_id=loyal_store.id, customer_id=customer)
    assert (summary.available, summary.pending, summary.tier.name) == (500, 0, "bronze")
    report = verify(session, loyal_store.id)
    assert report.ok, report.as_dict()
    assert report.members == 1 and report.entries == 2 and report.lots == 1


def test_debits_consume_soonest_expiring_lots_first(
    session: Session, loyal_store: Store, make_customer: CustomerFactory, clock: FrozenClock
) -> None:
    customer = make_customer()
    earn(session, loyal_store, customer, 100, "first")
    clock.advance(timedelta(days=40))
    earn(session, loyal_store, customer, 100, "second")
    spend(session, loyal_store, customer, 150, "spend")
    lots = session.scalars(
        select(PointLot).where(PointLot.store_id == loyal_store.id).order_by(PointLot.id)
    ).all()
    assert [lot.remaining for lot in lots] == [0, 50]
    consumed = session.scalars(select(LotConsumption).order_by(LotConsumption.id)).all()
    assert [(c.lot_id, c.amount) for c in consumed if c.member_id == lots[0].member_id] == [
        (lots[0].id, 100),
        (lots[1].id, 50),
    ]


def test_overdraft_is_refused_with_a_clear_message(
    session: Session, loyal_store: Store, make_customer: CustomerFactory
) -> None:
    customer = make_customer()
    earn(session, loyal_store, customer, 100, "k1")
    with pytest.raises(InsufficientPointsError, match="insufficient points: 100 available"):
        spend(session, loyal_store, customer, 101, "k2")
    with pytest.raises(InsufficientPointsError) as raised:
        redeem(
            session,
            store_id=loyal_store.id,
            customer_id=customer,
            redemption_in=RedemptionIn(reward="coupon-5"),
            idempotency_key="k3",
        )
    assert raised.value.status_code == 409
    assert verify(session, loyal_store.id).ok


def test_replay_returns_the_first_result_and_a_changed_body_conflicts(
    session: Session, loyal_store: Store, make_customer: CustomerFactory
) -> None:
    customer = make_customer()
    first, replayed = change_points(
        session,
        store_id=loyal_store.id,
        customer_id=customer,
        points_in=PointsIn(kind="earn", points=300, reason="goodwill"),
        idempotency_key="same",
    )
    again, replayed_again = change_points(
        session,
        store_id=loyal_store.id,
        customer_id=customer,
        points_in=PointsIn(kind="earn", points=300, reason="goodwill"),
        idempotency_key="same",
    )
    assert (replayed, replayed_again) == (False, True)
    assert again == first and again.available == 300
    with pytest.raises(IdempotencyKeyReusedError) as raised:
        change_points(
            session,
            store_id=loyal_store.id,
            customer_id=customer,
            points_in=PointsIn(kind="earn", points=301, reason="goodwill"),
            idempotency_key="same",
        )
    assert raised.value.status_code == 409
    assert member_summary(session, store_id=loyal_store.id, customer_id=customer).available == 300


def test_points_lapse_at_expiry_and_are_never_spent_after(
    session: Session, loyal_store: Store, make_customer: CustomerFactory, clock: FrozenClock
) -> None:
    customer = make_customer()
    earn(session, loyal_store, customer, 500, "k1")
    clock.advance(timedelta(days=366))
    summary = member_summary(session, store_id=loyal_store.id, customer_id=customer)
    assert summary.available == 0
    with pytest.raises(InsufficientPointsError):
        spend(session, loyal_store, customer, 1, "k2")
    assert verify(session, loyal_store.id).ok


def test_no_program_and_unknown_customer_are_explained(
    session: Session, store: Store, make_customer: CustomerFactory
) -> None:
    customer = make_customer()
    with pytest.raises(ProgramNotConfiguredError, match="no membership program"):
        earn(session, store, customer, 10, "k")


def test_unknown_customer_is_not_found(session: Session, loyal_store: Store) -> None:
    with pytest.raises(NotFoundError):
        earn(session, loyal_store, 987654321, 10, "k")


@pytest.mark.parametrize(
    "tamper",
    ["balance", "lot_remaining", "consumption", "entry_amount", "negative"],
)
def test_verify_detects_a_tampered_ledger(
    session: Session, loyal_store: Store, make_customer: CustomerFactory, tamper: str
) -> None:
    customer = make_customer()
    earn(session, loyal_store, customer, 400, "k1")
    spend(session, loyal_store, customer, 150, "k2")
    assert verify(session, loyal_store.id).ok
    member_id = repository.member_ids_by_customer(session, loyal_store.id, [customer])[customer]
    if tamper == "balance":
        session.execute(
            update(LoyaltyMember)
            .where(LoyaltyMember.id == member_id)
            .values(available_points=LoyaltyMember.available_points + 1)
        )
    elif tamper == "lot_remaining":
        session.execute(
            update(PointLot).where(PointLot.member_id == member_id).values(remaining=400)
        )
    elif tamper == "consumption":
        session.execute(
            update(LotConsumption)
            .where(LotConsumption.member_id == member_id)
            .values(amount=LotConsumption.amount + 500)
        )
    elif tamper == "entry_amount":
        session.execute(
            update(LedgerEntry)
            .where(LedgerEntry.member_id == member_id, LedgerEntry.kind == "adjust_debit")
            .values(available_delta=-100)
        )
    else:
        session.execute(
            update(LoyaltyMember).where(LoyaltyMember.id == member_id).values(available_points=-5)
        )
    report = verify(session, loyal_store.id)
    assert not report.ok
    failed = [check for check in report.checks if not check.holds]
    assert failed and all(check.examples for check in failed)


def test_batches_are_all_or_nothing_and_replay_like_single_requests(
    session: Session, loyal_store: Store, make_customer: CustomerFactory
) -> None:
    from patronage.loyalty.service import PointsRequest, change_points_many

    first, second = make_customer(), make_customer()
    earn_body = PointsIn(kind="earn", points=300, reason="batch")
    batch = [
        PointsRequest(first, earn_body, "b1"),
        PointsRequest(second, earn_body, "b2"),
        PointsRequest(first, PointsIn(kind="adjust", points=-100, reason="batch"), "b3"),
        PointsRequest(first, earn_body, "b1"),  # a replay inside the batch
    ]
    results = change_points_many(session, store_id=loyal_store.id, requests=batch)
    assert [(r.available, replayed) for r, replayed in results] == [
        (300, False),
        (300, False),
        (200, False),
        (300, True),
    ]
    again = change_points_many(session, store_id=loyal_store.id, requests=batch[:1])
    assert again == [(results[0][0], True)]
    single, replayed = change_points(
        session,
        store_id=loyal_store.id,
        customer_id=second,
        points_in=earn_body,
        idempotency_key="b2",
    )
    assert replayed and single == results[1][0]
    overdraft = [
        PointsRequest(second, earn_body, "c1"),
        PointsRequest(first, PointsIn(kind="adjust", points=-10_000, reason="x"), "c2"),
    ]
    with pytest.raises(InsufficientPointsError):
        change_points_many(session, store_id=loyal_store.id, requests=overdraft)
    assert member_summary(session, store_id=loyal_store.id, customer_id=second).available == 300
    assert verify(session, loyal_store.id).ok
