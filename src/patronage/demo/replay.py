"""History replayed month by month, so the membership program runs as it would have.

The process clock stands at each month's first moment in turn. At each step the orders whose
state changed during the month are written again as they stood at that moment (new orders paid
or in transit, parcels delivered, returns and refunds), so their points are credited pending,
activate once the return window has passed and are reversed by refunds. Then the daily jobs run
(activation with referral rewards, expiry with reminders, tier evaluation) and members act:
sign-up, review and birthday bonuses, friends referred with codes (a few blocked as fraud),
catalog rewards and points + cash redeemed, coupons used at a later order.

Every choice is drawn from a stream seeded by the demo seed and the subject (a customer, an order,
a step), and codes come from `seeded_codes`, so the same seed builds the same ledger.
"""

from __future__ import annotations

import bisect
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from patronage.db.session import session_scope
from patronage.demo.timeline import Timeline, order_at
from patronage.errors import PatronageError
from patronage.kit.clock import FrozenClock, set_clock
from patronage.kit.money import quantize
from patronage.loyalty import service
from patronage.loyalty.models import Coupon, LoyaltyMember, LoyaltyNotice, Referral
from patronage.loyalty.orders import activate_due, evaluate_tiers, expire_due
from patronage.loyalty.program import Program, current_program
from patronage.loyalty.referrals import record_referral, referral_code
from patronage.loyalty.rewards import use_coupon
from patronage.loyalty.schemas import PointsIn, RedemptionIn
from patronage.orders.fx import RateBook
from patronage.orders.schemas import OrderIn
from patronage.orders.service import upsert_orders
from patronage.stores.models import Store

ORDER_CHUNK = 1_000
REVIEW_SHARE = 0.12  # delivered orders that get a review
SIGNUP_SHARE = 0.6  # buyers who create an account (and get the sign-up bonus) at their first order
BIRTHDAY_CLAIM_SHARE = 0.6  # members with a birthday on file who claim the bonus in a year
REVIEW_VARIANTS = (("text", 0.6), ("photo", 0.3), ("video", 0.1))
REDEEM_SHARE = 0.08  # members able to afford a reward who redeem one in a month
CASH_SHARE = 0.35  # members with an order this month and 1,000+ points who pay part with points
COUPON_USE_SHARE = 0.85  # catalog coupons used at the member's next order
BLOCKED_REFERRAL_SHARE = 0.15  # referrals made from the referrer's own device


@dataclass(slots=True)
class Member:
    """What the replay needs to know of a customer."""

    customer_id: int
    birthday: date | None
    referred: bool
    device: str | None
    first_order_at: datetime | None = None


@dataclass(slots=True)
class ReplayOrder:
    """One order of the history: its final form, its whole life, its customer."""

    order: OrderIn
    timeline: Timeline
    customer: int  # position in the replay's members


@dataclass
class ReplaySummary:
    """What the replay did."""

    steps: int = 0
    order_writes: int = 0
    actions: int = 0
    redemptions: int = 0
    cash_redemptions: int = 0
    coupons_used: int = 0
    referrals: int = 0
    referrals_blocked: int = 0
    counts: dict[str, int] = field(default_factory=dict)


def current_program_of(engine: Engine, store_id: int) -> Program | None:
    """The store's program in force, if any."""
    with session_scope(engine) as session:
        found = current_program(session, store_id)
    return found[1] if found else None


def month_steps(start: date, as_of: datetime) -> list[datetime]:
    """The first moment of every month after `start` up to `as_of`, and `as_of` itself."""
    steps = []
    moment = datetime(start.year, start.month, 1, tzinfo=UTC)
    while True:
        moment = (moment + timedelta(days=32)).replace(day=1)
        if moment >= as_of:
            break
        steps.append(moment)
    steps.append(as_of)
    return steps


class HistoryReplay:
    """Replays a demo store's orders and its members' doings step by step."""

    def __init__(
        self,
        engine: Engine,
        *,
        store: Store,
        seed: int,
        rate_book: RateBook,
        members: Sequence[Member],
        orders: Sequence[ReplayOrder],
        steps: Sequence[datetime],
    ) -> None:
        self.engine = engine
        self.store = store
        self.seed = seed
        self.rate_book = rate_book
        self.members = members
        self.orders = orders
        self.steps = list(steps)
        self.summary = ReplaySummary()
        program = current_program_of(engine, store.id)
        self.reminder_days = program.expiry.reminder_days if program else []
        self._coupons: dict[int, tuple[str, datetime]] = {}  # member position -> unused coupon
        self._earlier_buyers: list[int] = []  # positions of members who had ordered, in order
        self._changes: dict[int, list[int]] = defaultdict(list)  # step -> order positions
        self._placed: dict[int, list[int]] = defaultdict(list)
        self._delivered: dict[int, list[int]] = defaultdict(list)
        for position, item in enumerate(orders):
            placed = item.order.placed_at
            moments = item.timeline.moments(placed)
            touched = {bisect.bisect_right(self.steps, moment) for moment in moments}
            for step in sorted(touched):
                if step < len(self.steps):
                    self._changes[step].append(position)
            self._placed[bisect.bisect_right(self.steps, placed)].append(position)
            if item.timeline.delivered is not None:
                step = bisect.bisect_right(self.steps, item.timeline.delivered)
                self._delivered[step].append(position)
            member = members[item.customer]
            if member.first_order_at is None or placed < member.first_order_at:
                member.first_order_at = placed

    def _rng(self, *subject: object) -> random.Random:
        return random.Random(":".join(map(str, ("demo-loyalty", self.seed, *subject))))

    def run(self) -> ReplaySummary:
        """Replay every step, each in its own transaction, with the clock at the step."""
        previous = datetime.min.replace(tzinfo=UTC)
        for index, moment in enumerate(self.steps):
            set_clock(FrozenClock(moment))
            with session_scope(self.engine) as session:
                self._step(session, index, previous, moment)
            previous = moment
            self.summary.steps += 1
        return self.summary

    def _step(self, session: Session, index: int, previous: datetime, now: datetime) -> None:
        placed = self._placed.get(index, [])
        self._late_reminders(session, previous, now)
        self._consume_notices(session, now)
        self._referrals(session, placed, previous)
        changed = [
            order_at(self.orders[position].order, self.orders[position].timeline, now)
            for position in self._changes.get(index, [])
        ]
        for start in range(0, len(changed), ORDER_CHUNK):
            upsert_orders(
                session,
                self.store,
                changed[start : start + ORDER_CHUNK],
                rate_book=self.rate_book,
            )
        self.summary.order_writes += len(changed)
        self._signups(session, placed, now)
        self._reviews(session, self._delivered.get(index, []), now)
        self._birthdays(session, now)
        self._use_coupons(session, placed, now)
        activate_due(session, self.store.id, now)
        expire_due(session, self.store.id, now)
        evaluate_tiers(session, self.store.id, now)
        self._redeem(session, placed, now)
        for position in placed:
            customer = self.orders[position].customer
            if self.members[customer].first_order_at == self.orders[position].order.placed_at:
                self._earlier_buyers.append(customer)

    def _late_reminders(self, session: Session, previous: datetime, now: datetime) -> None:
        """The reminders a daily job would have sent in the days before this step.

        Points lapse on any day, but the replay moves a month at a time: the expiry job also
        runs 30, 7 and 1 days before each step (when that is after the previous one), so the
        reminders of the month go out and are taken by the flows before the step.
        """
        for days in sorted(self.reminder_days, reverse=True):
            moment = now - timedelta(days=days)
            if previous < moment:
                expire_due(session, self.store.id, moment)

    def _consume_notices(self, session: Session, now: datetime) -> None:
        """The flows took the notices queued earlier (reminders sent, tier changes announced)."""
        session.execute(
            update(LoyaltyNotice)
            .where(LoyaltyNotice.store_id == self.store.id, LoyaltyNotice.processed_at.is_(None))
            .values(processed_at=now)
        )

    # --- Members' doings ----------------------------------------------------------------------

    def _action(
        self, session: Session, customer: int, action: str, key: str, variant: str | None = None
    ) -> None:
        try:
            service.change_points(
                session,
                store_id=self.store.id,
                customer_id=self.members[customer].customer_id,
                points_in=PointsIn(kind="action", action=action, variant=variant),
                idempotency_key=f"demo:{key}",
            )
        except PatronageError:
            return  # already awarded this period: the program says no, as it would have
        self.summary.actions += 1

    def _signups(self, session: Session, placed: list[int], now: datetime) -> None:
        for position in placed:
            item = self.orders[position]
            member = self.members[item.customer]
            if (
                member.first_order_at == item.order.placed_at
                and item.timeline.paid is not None
                and self._rng("signup", item.customer).random() < SIGNUP_SHARE
            ):
                self._action(session, item.customer, "signup", f"signup:{member.customer_id}")

    def _reviews(self, session: Session, delivered: list[int], now: datetime) -> None:
        for position in delivered:
            item = self.orders[position]
            rng = self._rng("review", item.order.external_id)
            if rng.random() >= REVIEW_SHARE:
                continue
            draw, variant = rng.random(), REVIEW_VARIANTS[-1][0]
            for name, share in REVIEW_VARIANTS:
                if draw < share:
                    variant = name
                    break
                draw -= share
            key = f"review:{item.order.external_id}"
            self._action(session, item.customer, "review", key, variant)

    def _birthdays(self, session: Session, now: datetime) -> None:
        for customer, member in enumerate(self.members):
            if (
                member.birthday is not None
                and member.birthday.month == now.month
                and member.first_order_at is not None
                and member.first_order_at < now
                and self._rng("birthday", customer, now.year).random() < BIRTHDAY_CLAIM_SHARE
            ):
                key = f"birthday:{member.customer_id}:{now.year}"
                self._action(session, customer, "birthday", key)

    def _referrals(self, session: Session, placed: list[int], previous: datetime) -> None:
        """Friends who came with a code sign up just before their first order."""
        for position in placed:
            item = self.orders[position]
            member = self.members[item.customer]
            if not member.referred or member.first_order_at != item.order.placed_at:
                continue
            if not self._earlier_buyers:
                continue
            rng = self._rng("referral", item.customer)
            referrer = self._earlier_buyers[int(rng.random() * len(self._earlier_buyers))]
            if referrer == item.customer:
                continue
            host = self.members[referrer]
            moment = max(item.order.placed_at - timedelta(hours=1), previous)
            code = referral_code(
                session, store_id=self.store.id, customer_id=host.customer_id, now=moment
            )
            device = host.device if rng.random() < BLOCKED_REFERRAL_SHARE else None
            outcome = record_referral(
                session,
                store_id=self.store.id,
                code=code,
                referred_customer_id=member.customer_id,
                source=f"198.51.100.{item.customer % 250}",
                device_id=device,
                now=moment,
            )
            self.summary.referrals += 1
            self.summary.referrals_blocked += outcome.status == "blocked"

    def _balances(self, session: Session) -> dict[int, int]:
        rows = session.execute(
            select(LoyaltyMember.customer_id, LoyaltyMember.available_points).where(
                LoyaltyMember.store_id == self.store.id
            )
        )
        return {customer_id: points for customer_id, points in rows}

    def _redeem(self, session: Session, placed: list[int], now: datetime) -> None:
        balances = self._balances(session)
        ordered = {self.orders[position].customer: position for position in placed}
        for customer, member in enumerate(self.members):
            available = balances.get(member.customer_id, 0)
            if available < 500:
                continue
            rng = self._rng("redeem", customer, now.date())
            if customer in ordered and available >= 1_000 and rng.random() < CASH_SHARE:
                self._points_for_cash(session, customer, self.orders[ordered[customer]].order, now)
                continue
            if rng.random() >= REDEEM_SHARE:
                continue
            reward = "coupon-5"
            if available >= 5_000 and rng.random() < 0.3:
                reward = "free-shipping-year"
            elif available >= 1_500 and rng.random() < 0.2:
                reward = "merchandise"
            try:
                result, _ = service.redeem(
                    session,
                    store_id=self.store.id,
                    customer_id=member.customer_id,
                    redemption_in=RedemptionIn(reward=reward),
                    idempotency_key=f"demo:redeem:{member.customer_id}:{now.date()}",
                )
            except PatronageError:
                continue  # in debt after a refund, or points lapsed: nothing to spend
            self.summary.redemptions += 1
            coupon = result.coupon
            if (
                coupon is not None
                and reward == "coupon-5"
                and coupon.expires_at is not None
                and rng.random() < COUPON_USE_SHARE
            ):
                self._coupons[customer] = (coupon.code, coupon.expires_at)

    def _points_for_cash(
        self, session: Session, customer: int, order: OrderIn, now: datetime
    ) -> None:
        """Pay part of an order with points, in the base currency at the order's rate."""
        member = self.members[customer]
        base = self.store.base_currency
        rate = self.rate_book.rate(order.currency, order.placed_at.date())
        total = quantize(order.total * rate, base)
        try:
            result, _ = service.redeem(
                session,
                store_id=self.store.id,
                customer_id=member.customer_id,
                redemption_in=RedemptionIn(order_total=total, currency=base),
                idempotency_key=f"demo:cash:{order.external_id}",
            )
        except PatronageError:
            return  # too few points for this order's share
        self.summary.cash_redemptions += 1
        if result.coupon is not None:
            use_coupon(
                session,
                store_id=self.store.id,
                code=result.coupon.code,
                now=now,
                reference=order.name,
            )
            self.summary.coupons_used += 1

    def _use_coupons(self, session: Session, placed: list[int], now: datetime) -> None:
        for position in placed:
            item = self.orders[position]
            held = self._coupons.get(item.customer)
            if held is None:
                continue
            code, expires_at = held
            if item.order.placed_at >= expires_at:
                del self._coupons[item.customer]  # it lapsed unused
                continue
            use_coupon(
                session,
                store_id=self.store.id,
                code=code,
                now=item.order.placed_at,
                reference=item.order.name,
            )
            del self._coupons[item.customer]
            self.summary.coupons_used += 1


def membership_summary(session: Session, store_id: int, *, as_of: datetime) -> dict[str, Any]:
    """The membership program's state in a store: tiers, balances, notices, coupons, referrals."""
    members = LoyaltyMember.__table__
    tiers: dict[str, int] = dict(
        session.execute(
            select(members.c.tier, func.count())
            .where(members.c.store_id == store_id)
            .group_by(members.c.tier)
        ).all()
    )
    balances = session.execute(
        select(
            func.count(),
            func.count().filter(members.c.pending_points > 0),
            func.count().filter(members.c.available_points > 0),
            func.count().filter(members.c.debt_points > 0),
            func.count().filter(members.c.heritage_since_at.is_not(None)),
        ).where(members.c.store_id == store_id)
    ).one()
    notices: dict[str, int] = dict(
        session.execute(
            select(LoyaltyNotice.kind, func.count())
            .where(LoyaltyNotice.store_id == store_id, LoyaltyNotice.processed_at.is_(None))
            .group_by(LoyaltyNotice.kind)
            .order_by(LoyaltyNotice.kind)
        ).all()
    )
    coupons = session.execute(
        select(
            func.count(),
            func.count().filter(Coupon.used_at.is_not(None)),
            func.count().filter(Coupon.used_at.is_(None), Coupon.expires_at <= as_of),
        ).where(Coupon.store_id == store_id)
    ).one()
    referrals: dict[str, int] = dict(
        session.execute(
            select(Referral.status, func.count())
            .where(Referral.store_id == store_id)
            .group_by(Referral.status)
            .order_by(Referral.status)
        ).all()
    )
    return {
        "members": balances[0],
        "tiers": {name: tiers.get(name, 0) for name in _tier_order(session, store_id, tiers)},
        "with_pending_points": balances[1],
        "with_available_points": balances[2],
        "in_debt": balances[3],
        "heritage": balances[4],
        "pending_notices": notices,
        "coupons": {"issued": coupons[0], "used": coupons[1], "expired_unused": coupons[2]},
        "referrals": referrals,
    }


def _tier_order(session: Session, store_id: int, found: dict[str, int]) -> list[str]:
    program = current_program(session, store_id)
    names = [tier.name for tier in program[1].tiers] if program else []
    return names + sorted(set(found) - set(names))
