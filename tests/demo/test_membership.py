"""The demo store runs the default membership program through its history, and it verifies."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from patronage.db.session import session_scope
from patronage.demo.generator import DemoSummary, build_demo_store
from patronage.demo.replay import month_steps
from patronage.loyalty.ledger import verify
from patronage.loyalty.models import (
    Coupon,
    LedgerEntry,
    LoyaltyMember,
    LoyaltyNotice,
    LoyaltyOrder,
    PointLot,
    Referral,
)
from patronage.orders.models import Order

AS_OF = date(2026, 11, 1)
AS_OF_MOMENT = datetime(2026, 11, 1, tzinfo=UTC)
SIZE = 400


@pytest.fixture(scope="module")
def demo(engine: Engine) -> DemoSummary:
    """A demo store of 400 customers, seed 7 (enough for a member in every tier)."""
    return build_demo_store(engine, customers=SIZE, seed=7, as_of=AS_OF)


def test_the_ledger_verifies(engine: Engine, demo: DemoSummary) -> None:
    with session_scope(engine) as session:
        report = verify(session, demo.store_id)
    assert report.ok, report.as_dict()
    assert report.members > SIZE * 0.8 and report.entries > report.members * 3


def test_members_are_in_every_tier(demo: DemoSummary) -> None:
    tiers = demo.membership["tiers"]
    assert list(tiers) == ["bronze", "silver", "gold", "diamond"]
    assert all(count > 0 for count in tiers.values()), tiers
    assert tiers["bronze"] > tiers["silver"] > tiers["diamond"]
    assert demo.membership["heritage"] == 0  # the history is shorter than the 5 years it needs


def test_points_went_through_every_state(engine: Engine, demo: DemoSummary) -> None:
    membership = demo.membership
    assert membership["with_pending_points"] > 0 and membership["with_available_points"] > 0
    with session_scope(engine) as session:
        kinds = Counter(
            dict(
                session.execute(
                    select(LedgerEntry.kind, func.count())
                    .where(LedgerEntry.store_id == demo.store_id)
                    .group_by(LedgerEntry.kind)
                ).all()
            )
        )
        assert {"earn", "activate", "expire", "redeem", "reverse", "bonus", "referral"} <= set(
            kinds
        ), kinds
        # Expiring soon, with the reminder queued and not yet taken by the flows.
        soon = session.scalar(
            select(func.count()).where(
                PointLot.store_id == demo.store_id,
                PointLot.remaining > 0,
                PointLot.expires_at > AS_OF_MOMENT,
                PointLot.expires_at <= AS_OF_MOMENT + timedelta(days=30),
            )
        )
        assert soon
        stages = Counter(
            payload["days_before"]
            for payload in session.scalars(
                select(LoyaltyNotice.payload).where(
                    LoyaltyNotice.store_id == demo.store_id,
                    LoyaltyNotice.kind == "points_expiring",
                )
            )
        )
        assert stages[30] and stages[7] and stages[1], stages  # three reminders before a lapse
    assert membership["pending_notices"].get("points_expiring", 0) > 0


def test_the_history_is_dated_as_it_happened(engine: Engine, demo: DemoSummary) -> None:
    steps = set(month_steps(AS_OF - timedelta(days=1_000), AS_OF_MOMENT))
    with session_scope(engine) as session:
        moments = set(
            session.scalars(
                select(LedgerEntry.occurred_at)
                .where(LedgerEntry.store_id == demo.store_id, LedgerEntry.kind == "activate")
                .distinct()
            )
        )
        assert len(moments) > 24 and moments <= steps
        # An order's points are earned after it was placed and activate after the return window.
        rows = session.execute(
            select(Order.placed_at, Order.delivered_at, LedgerEntry.occurred_at, PointLot)
            .join(LedgerEntry, LedgerEntry.order_id == Order.id)
            .join(PointLot, PointLot.entry_id == LedgerEntry.id)
            .where(Order.store_id == demo.store_id, LedgerEntry.kind == "earn")
        ).all()
        assert rows
        for placed, delivered, earned_at, lot in rows:
            assert placed < earned_at <= placed + timedelta(days=32)
            if lot.activated_at is not None and delivered is not None:
                assert lot.activated_at >= delivered + timedelta(days=30)


def test_refunds_took_points_back_but_never_more_than_earned(
    engine: Engine, demo: DemoSummary
) -> None:
    with session_scope(engine) as session:
        states = list(
            session.scalars(select(LoyaltyOrder).where(LoyaltyOrder.store_id == demo.store_id))
        )
    reversed_orders = [state for state in states if state.reversed_points > 0]
    assert reversed_orders
    assert all(state.reversed_points <= state.earned_points for state in states)


def test_rewards_coupons_and_points_for_cash(engine: Engine, demo: DemoSummary) -> None:
    coupons = demo.membership["coupons"]
    assert coupons["issued"] > coupons["used"] > 0 and coupons["expired_unused"] > 0
    with session_scope(engine) as session:
        rewards = Counter(
            dict(
                session.execute(
                    select(Coupon.reward, func.count())
                    .where(Coupon.store_id == demo.store_id)
                    .group_by(Coupon.reward)
                ).all()
            )
        )
        assert rewards["coupon-5"] > 0 and rewards["points-for-cash"] > 0
        used = session.execute(
            select(
                Coupon.used_at, Coupon.issued_at, Coupon.expires_at, Coupon.used_reference
            ).where(Coupon.store_id == demo.store_id, Coupon.used_at.is_not(None))
        ).all()
        for used_at, issued_at, expires_at, reference in used:
            assert issued_at <= used_at < expires_at and reference.startswith("#")


def test_bonus_actions_and_referrals(engine: Engine, demo: DemoSummary) -> None:
    referrals = demo.membership["referrals"]
    assert referrals.get("pending", 0) and referrals.get("rewarded", 0)
    assert referrals.get("blocked", 0)
    with session_scope(engine) as session:
        blocked = session.scalars(
            select(Referral.reason).where(
                Referral.store_id == demo.store_id, Referral.status == "blocked"
            )
        ).all()
        assert all(reason and reason.startswith("self-referral") for reason in blocked)
        actions = Counter(
            (entry["action"], entry.get("variant"))
            for entry in session.scalars(
                select(LedgerEntry.details).where(
                    LedgerEntry.store_id == demo.store_id, LedgerEntry.kind == "bonus"
                )
            )
        )
        assert actions[("signup", None)] > 0 and actions[("birthday", None)] > 0
        assert {("review", "text"), ("review", "photo")} <= set(actions)
        upgrades = session.scalar(
            select(func.count()).where(
                LoyaltyNotice.store_id == demo.store_id, LoyaltyNotice.kind == "tier_upgraded"
            )
        )
        assert upgrades
        diamonds = session.scalar(
            select(func.count()).where(
                LoyaltyMember.store_id == demo.store_id, LoyaltyMember.tier == "diamond"
            )
        )
        assert diamonds == demo.membership["tiers"]["diamond"]
