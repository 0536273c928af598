"""Orders earn by themselves: the earning base in the base currency, pending until the return
window has passed, multipliers and tasks, proportional reversal on refunds, cancellation, and the
spent-points policy; running the sync again changes nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from patronage.kit.clock import FrozenClock
from patronage.loyalty import repository
from patronage.loyalty.ledger import verify
from patronage.loyalty.models import LedgerEntry
from patronage.loyalty.orders import activate_due, sync_order_points
from patronage.loyalty.program import Program, set_program
from patronage.loyalty.schemas import PointsIn
from patronage.loyalty.service import change_points, member_summary
from patronage.orders.fx import set_rate
from patronage.orders.schemas import OrderIn, RefundIn
from patronage.orders.service import upsert_orders
from patronage.stores.models import Store
from tests.loyalty.conftest import START

PLACED = START  # 2026-03-02, not a member day


def make_order(external_id: str = "1001", **overrides: Any) -> OrderIn:
    values: dict[str, Any] = dict(
        source="shopify",
        external_id=external_id,
        currency="USD",
        placed_at=PLACED,
        paid_at=PLACED,
        subtotal=Decimal("100.00"),
        total=Decimal("110.00"),
        shipping=Decimal("10.00"),
        email="ana@example.com",
    )
    values.update(overrides)
    return OrderIn(**values)


def record(session: Session, store: Store, *orders: OrderIn) -> list[int]:
    ids = upsert_orders(session, store, list(orders)).order_ids
    sync_order_points(session, store, ids)
    return ids


def customer_of(session: Session, store: Store, email: str = "ana@example.com") -> int:
    from patronage.customers.repository import find_by_email

    customer = find_by_email(session, store.id, email)
    assert customer is not None
    return customer.id


def balances(session: Session, store: Store, email: str = "ana@example.com") -> tuple[int, int]:
    summary = member_summary(
        session, store_id=store.id, customer_id=customer_of(session, store, email)
    )
    return summary.available, summary.pending


def entry_count(session: Session, store: Store) -> int:
    return int(session.scalar(select(func.count()).where(LedgerEntry.store_id == store.id)) or 0)


def test_earning_base_is_merchandise_net_of_discounts_in_the_base_currency(
    session: Session, loyal_store: Store
) -> None:
    set_rate(
        session,
        loyal_store.id,
        currency="EUR",
        rate_date=date(2026, 3, 1),
        rate=Decimal("1.10"),
        source="test",
    )
    record(
        session,
        loyal_store,
        make_order(
            currency="EUR",
            subtotal=Decimal("100.00"),
            discount=Decimal("10.00"),
            shipping=Decimal("10.00"),
            tax=Decimal("5.00"),
            total=Decimal("105.00"),
        ),
    )
    # (100 - 10) EUR x 1.10 = 99.00 USD -> 990 points; shipping and tax earn nothing.
    assert balances(session, loyal_store) == (0, 990)
    assert verify(session, loyal_store.id).ok


def test_shipping_and_tax_earn_when_the_program_says_so(
    session: Session, loyal_store: Store, program: Program
) -> None:
    program.earning.base.include_shipping = True
    program.earning.base.include_tax = True
    set_program(session, loyal_store.id, program, source="test")
    record(session, loyal_store, make_order(tax=Decimal("5.00"), total=Decimal("115.00")))
    assert balances(session, loyal_store) == (0, 1150)


def test_points_wait_out_the_return_window_after_delivery(
    session: Session, loyal_store: Store, clock: FrozenClock
) -> None:
    record(session, loyal_store, make_order())
    assert balances(session, loyal_store) == (0, 1000)
    delivered = PLACED + timedelta(days=12)
    clock.advance(timedelta(days=12))
    record(session, loyal_store, make_order(delivered_at=delivered))
    clock.advance(timedelta(days=29))
    activate_due(session, loyal_store.id, clock.now())
    assert balances(session, loyal_store) == (0, 1000)
    clock.advance(timedelta(days=1))
    summary = activate_due(session, loyal_store.id, clock.now())
    assert summary.activated == 1000
    assert balances(session, loyal_store) == (1000, 0)
    lot = repository.open_lots(
        session,
        repository.member_ids_by_customer(
            session, loyal_store.id, [customer_of(session, loyal_store)]
        )[customer_of(session, loyal_store)],
    )[0]
    # The expiry clock starts at activation: delivered + 30 days + 12 months.
    assert lot["expires_at"] == datetime(2027, 4, 13, 9, 0, tzinfo=UTC)
    assert verify(session, loyal_store.id).ok


def test_sync_is_idempotent(session: Session, loyal_store: Store) -> None:
    ids = record(session, loyal_store, make_order(refunds=[]))
    before = entry_count(session, loyal_store)
    sync_order_points(session, loyal_store, ids)
    sync_order_points(session, loyal_store, ids)
    assert entry_count(session, loyal_store) == before
    assert balances(session, loyal_store) == (0, 1000)


def test_partial_refunds_reverse_proportionally_and_never_more_than_earned(
    session: Session, loyal_store: Store, clock: FrozenClock
) -> None:
    record(session, loyal_store, make_order())
    refund = RefundIn(external_id="r1", amount=Decimal("27.50"), refunded_at=PLACED)
    record(session, loyal_store, make_order(refunds=[refund]))
    # 27.50 / 110.00 = 25 % of 1,000 points.
    assert balances(session, loyal_store) == (0, 750)
    second = RefundIn(external_id="r2", amount=Decimal("100.00"), refunded_at=PLACED)
    record(session, loyal_store, make_order(refunds=[refund, second]))
    assert balances(session, loyal_store) == (0, 0)
    assert verify(session, loyal_store.id).ok


def test_cancelled_orders_lose_their_pending_points(session: Session, loyal_store: Store) -> None:
    record(session, loyal_store, make_order())
    record(session, loyal_store, make_order(cancelled_at=PLACED + timedelta(hours=2)))
    assert balances(session, loyal_store) == (0, 0)
    assert verify(session, loyal_store.id).ok


def _spend_everything(session: Session, store: Store, customer_id: int, points: int) -> None:
    change_points(
        session,
        store_id=store.id,
        customer_id=customer_id,
        points_in=PointsIn(kind="adjust", points=-points, reason="spent"),
        idempotency_key=f"spend-{points}",
    )


def test_refund_of_spent_points_goes_negative_and_is_recovered_later(
    session: Session, loyal_store: Store, clock: FrozenClock
) -> None:
    record(session, loyal_store, make_order(delivered_at=PLACED))
    clock.advance(timedelta(days=31))
    activate_due(session, loyal_store.id, clock.now())
    customer = customer_of(session, loyal_store)
    _spend_everything(session, loyal_store, customer, 800)
    refund = RefundIn(external_id="r1", amount=Decimal("110.00"), refunded_at=clock.now())
    record(session, loyal_store, make_order(delivered_at=PLACED, refunds=[refund]))
    summary = member_summary(session, store_id=loyal_store.id, customer_id=customer)
    assert (summary.available, summary.debt) == (-800, 800)
    report = verify(session, loyal_store.id)
    assert report.ok and report.negative_allowed
    change_points(
        session,
        store_id=loyal_store.id,
        customer_id=customer,
        points_in=PointsIn(kind="earn", points=1000, reason="goodwill"),
        idempotency_key="goodwill",
    )
    summary = member_summary(session, store_id=loyal_store.id, customer_id=customer)
    assert (summary.available, summary.debt) == (200, 0)
    assert verify(session, loyal_store.id).ok


def test_refund_of_spent_points_is_flagged_under_the_flag_policy(
    session: Session, loyal_store: Store, program: Program, clock: FrozenClock
) -> None:
    program.returns.spent_points_policy = "flag"
    set_program(session, loyal_store.id, program, source="test")
    record(session, loyal_store, make_order(delivered_at=PLACED))
    clock.advance(timedelta(days=31))
    activate_due(session, loyal_store.id, clock.now())
    customer = customer_of(session, loyal_store)
    _spend_everything(session, loyal_store, customer, 800)
    refund = RefundIn(external_id="r1", amount=Decimal("110.00"), refunded_at=clock.now())
    record(session, loyal_store, make_order(delivered_at=PLACED, refunds=[refund]))
    summary = member_summary(session, store_id=loyal_store.id, customer_id=customer)
    assert (summary.available, summary.debt) == (0, 0)
    flagged = [
        n for n in repository.notices_of(session, loyal_store.id) if n["kind"] == "refund_review"
    ]
    assert len(flagged) == 1 and flagged[0]["payload"]["points_owed"] == 800
    assert verify(session, loyal_store.id).ok


def test_member_day_and_tier_multipliers_stack(
    session: Session, loyal_store: Store, program: Program
) -> None:
    member_day = datetime(2026, 3, 18, 4, 0, tzinfo=UTC)  # 12:00 on the 18th in Shanghai
    record(session, loyal_store, make_order(placed_at=member_day, paid_at=member_day))
    assert balances(session, loyal_store) == (0, 3000)
    program.stacking = "add"
    program.tiers[0].benefits.points_multiplier = Decimal("1.5")
    set_program(session, loyal_store.id, program, source="test")
    record(
        session,
        loyal_store,
        make_order("1002", placed_at=member_day, paid_at=member_day, email="bo@example.com"),
    )
    # add: 1 + (1.5 - 1) + (3 - 1) = 3.5
    assert balances(session, loyal_store, "bo@example.com") == (0, 3500)
    program.stacking = "highest"
    set_program(session, loyal_store.id, program, source="test")
    record(
        session,
        loyal_store,
        make_order("1003", placed_at=member_day, paid_at=member_day, email="cy@example.com"),
    )
    assert balances(session, loyal_store, "cy@example.com") == (0, 3000)
    program.stacking = "multiply"
    program.max_multiplier = Decimal(4)
    set_program(session, loyal_store.id, program, source="test")
    record(
        session,
        loyal_store,
        make_order("1004", placed_at=member_day, paid_at=member_day, email="di@example.com"),
    )
    assert balances(session, loyal_store, "di@example.com") == (0, 4000)  # 4.5 capped at 4


def test_three_orders_in_a_month_complete_the_task_once(
    session: Session, loyal_store: Store
) -> None:
    for number in range(4):
        moment = PLACED + timedelta(days=number)
        record(session, loyal_store, make_order(f"20{number}", placed_at=moment, paid_at=moment))
    # 4 orders x 1,000 points + 300 once.
    assert balances(session, loyal_store) == (0, 4300)


@pytest.mark.parametrize("paid", [False])
def test_unpaid_orders_earn_nothing(session: Session, loyal_store: Store, paid: bool) -> None:
    record(session, loyal_store, make_order(paid_at=None))
    assert balances(session, loyal_store) == (0, 0)


def test_stores_without_a_program_earn_nothing(session: Session, store: Store) -> None:
    ids = upsert_orders(session, store, [make_order()]).order_ids
    summary = sync_order_points(session, store, ids)
    assert summary.orders == 0
