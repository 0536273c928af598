"""Rewards: catalog redemptions with unique single-use coupons, and points + cash with a cap."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy.orm import Session

from patronage.kit.clock import FrozenClock
from patronage.loyalty.errors import CouponNotRedeemableError, InsufficientPointsError
from patronage.loyalty.ledger import verify
from patronage.loyalty.program import PointsForCash
from patronage.loyalty.rewards import new_coupon_code, quote_points_for_cash, use_coupon
from patronage.loyalty.schemas import PointsIn, RedemptionIn
from patronage.loyalty.service import change_points, redeem
from patronage.stores.models import Store
from tests.loyalty.conftest import CustomerFactory


def _fund(session: Session, store: Store, customer: int, points: int) -> None:
    change_points(
        session,
        store_id=store.id,
        customer_id=customer,
        points_in=PointsIn(kind="earn", points=points, reason="fund"),
        idempotency_key=f"fund-{customer}-{points}",
    )


def test_points_cover_at_most_the_capped_share_of_an_order() -> None:
    rule = PointsForCash()
    quote = quote_points_for_cash(
        rule,
        order_total=Decimal("100.00"),
        currency="USD",
        rate_to_base=Decimal(1),
        available=5000,
        requested=5000,
    )
    assert (quote.points, quote.value, quote.cap) == (3000, Decimal("30.00"), Decimal("30.00"))
    small = quote_points_for_cash(
        rule,
        order_total=Decimal("100.00"),
        currency="USD",
        rate_to_base=Decimal(1),
        available=5000,
        requested=1234,
    )
    assert (small.points, small.value) == (1234, Decimal("12.34"))
    with pytest.raises(InsufficientPointsError):
        quote_points_for_cash(
            rule,
            order_total=Decimal("100.00"),
            currency="USD",
            rate_to_base=Decimal(1),
            available=50,
            requested=None,
        )


def test_points_for_cash_in_another_currency() -> None:
    quote = quote_points_for_cash(
        PointsForCash(),
        order_total=Decimal("10000"),
        currency="JPY",
        rate_to_base=Decimal("0.0067"),
        available=100000,
        requested=None,
    )
    # Cap: 30 % of 10,000 JPY = 3,000 JPY, which costs 3,000 x 0.0067 x 100 = 2,010 points.
    assert (quote.value, quote.points) == (Decimal("3000"), 2010)


def test_reward_redemption_issues_a_unique_single_use_coupon(
    session: Session, loyal_store: Store, make_customer: CustomerFactory, clock: FrozenClock
) -> None:
    customer = make_customer()
    _fund(session, loyal_store, customer, 500 * 40)
    codes = set()
    for number in range(40):
        result, _ = redeem(
            session,
            store_id=loyal_store.id,
            customer_id=customer,
            redemption_in=RedemptionIn(reward="coupon-5"),
            idempotency_key=f"r{number}",
        )
        assert result.coupon is not None and result.coupon.value == Decimal(5)
        codes.add(result.coupon.code)
    assert len(codes) == 40 and result.available == 0
    code = sorted(codes)[0]
    use_coupon(session, store_id=loyal_store.id, code=code, now=clock.now())
    with pytest.raises(CouponNotRedeemableError):
        use_coupon(session, store_id=loyal_store.id, code=code, now=clock.now())
    expired = sorted(codes)[1]
    with pytest.raises(CouponNotRedeemableError):
        use_coupon(
            session, store_id=loyal_store.id, code=expired, now=clock.now() + timedelta(days=91)
        )
    assert verify(session, loyal_store.id).ok


def test_coupon_codes_are_random_and_readable() -> None:
    codes = {new_coupon_code() for _ in range(5000)}
    assert len(codes) == 5000
    assert all(len(code) == 13 and not set(code) & set("ILOU") for code in codes)


def test_points_plus_cash_redemption(
    session: Session, loyal_store: Store, make_customer: CustomerFactory
) -> None:
    customer = make_customer()
    _fund(session, loyal_store, customer, 5000)
    result, _ = redeem(
        session,
        store_id=loyal_store.id,
        customer_id=customer,
        redemption_in=RedemptionIn(order_total=Decimal("100.00"), points=5000),
        idempotency_key="cash",
    )
    assert result.points == -3000 and result.available == 2000
    assert result.coupon is not None and result.coupon.value == Decimal("30.00")
    assert result.note and "capped at 30.00 USD" in result.note
    assert verify(session, loyal_store.id).ok


def test_seeded_codes_repeat_and_unseeded_ones_do_not() -> None:
    from patronage.loyalty.rewards import seeded_codes

    def draw() -> list[str]:
        with seeded_codes("demo:7"):
            return [new_coupon_code() for _ in range(5)]

    first = draw()
    assert first == draw() and len(set(first)) == 5
    assert new_coupon_code() not in first
    with seeded_codes("demo:8"):
        assert new_coupon_code() != first[0]
