"""A Hypothesis state machine drives the ledger (earn, redeem, orders and refunds, activation,
expiry, replays, moving the clock) against an in-memory model of the same rules. After every step
the member's balances and every lot agree with the model and nothing is negative but owed debt;
every replay returns its first result; at the end of each run `verify` proves the ledger."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy.orm import Session

from patronage.customers.schemas import CustomerIn
from patronage.customers.service import resolve_customers
from patronage.kit.clock import FrozenClock, get_clock, set_clock
from patronage.loyalty import repository
from patronage.loyalty.errors import IdempotencyKeyReusedError, InsufficientPointsError
from patronage.loyalty.ledger import verify
from patronage.loyalty.orders import activate_due, expire_due, sync_order_points
from patronage.loyalty.program import Program, Tier, add_months, default_program, set_program
from patronage.loyalty.schemas import MutationOut, PointsIn, RedemptionIn
from patronage.loyalty.service import change_points, redeem
from patronage.orders.schemas import OrderIn, RefundIn
from patronage.orders.service import upsert_orders
from patronage.stores.models import Store

WINDOW = timedelta(days=30)
EXPIRY_MONTHS = 12
_counter = itertools.count()


@dataclass
class ModelLot:
    """The model's idea of a lot."""

    amount: int
    remaining: int
    activates_at: datetime
    active: bool
    expires_at: datetime | None
    order: int | None = None


@dataclass
class ModelOrder:
    """An order the model placed: its total, refunds, points earned and reversed."""

    external_id: str
    placed_at: datetime
    total: Decimal
    refunded: Decimal = Decimal(0)
    earned: int = 0
    reversed: int = 0
    refunds: int = 0


@dataclass
class Model:
    """The ledger's rules, written again as plainly as possible."""

    lots: list[ModelLot] = field(default_factory=list)
    available: int = 0
    pending: int = 0
    debt: int = 0

    def copy(self) -> Model:
        return Model(
            [ModelLot(**vars(lot)) for lot in self.lots], self.available, self.pending, self.debt
        )

    def recover(self, lot: ModelLot) -> None:
        take = min(self.debt, lot.remaining)
        lot.remaining -= take
        self.debt -= take

    def credit_now(self, points: int, now: datetime) -> None:
        lot = ModelLot(points, points, now, True, add_months(now, EXPIRY_MONTHS))
        self.lots.append(lot)
        self.available += points
        self.recover(lot)

    def credit_pending(self, points: int, activates_at: datetime, order: int) -> None:
        self.lots.append(ModelLot(points, points, activates_at, False, None, order))
        self.pending += points

    def activate_due(self, now: datetime) -> None:
        for lot in self.lots:
            if not lot.active and lot.remaining > 0 and lot.activates_at <= now:
                lot.active = True
                lot.expires_at = add_months(lot.activates_at, EXPIRY_MONTHS)
                self.available += lot.remaining
                self.pending -= lot.remaining
                self.recover(lot)

    def expire_lapsed(self, now: datetime) -> None:
        for lot in self.lots:
            if lot.active and lot.expires_at is not None and lot.expires_at <= now:
                self.available -= lot.remaining
                lot.remaining = 0

    def spendable_order(self) -> list[ModelLot]:
        active = [(index, lot) for index, lot in enumerate(self.lots) if lot.active]
        active.sort(key=lambda pair: (pair[1].expires_at is None, pair[1].expires_at, pair[0]))
        return [lot for _, lot in active]

    def debit(self, points: int, now: datetime, *, order: int | None = None) -> None:
        """Take points; a redemption refuses an overdraft, a reversal leaves debt."""
        self.activate_due(now)
        self.expire_lapsed(now)
        if order is None and self.available < points:
            raise InsufficientPointsError("model: insufficient")
        candidates = self.spendable_order()
        if order is not None:
            own = [
                (index, lot)
                for index, lot in enumerate(self.lots)
                if lot.order == order and lot.remaining > 0
            ]
            own.sort(key=lambda pair: (pair[1].active, pair[0]))
            candidates = [lot for _, lot in own] + [c for c in candidates if c.order != order]
        still = points
        for lot in candidates:
            take = min(lot.remaining, still)
            lot.remaining -= take
            still -= take
            if lot.active:
                self.available -= take
            else:
                self.pending -= take
        self.available -= still
        self.debt += still


class LedgerMachine(RuleBasedStateMachine):
    """Drives the real services and the model side by side."""

    session: Session
    store: Store

    def __init__(self) -> None:
        super().__init__()
        self.clock = FrozenClock(datetime(2026, 1, 5, 12, tzinfo=UTC))
        set_clock(self.clock)
        self.tag = next(_counter)
        self.email = f"machine{self.tag}@example.com"
        self.customer_id = resolve_customers(
            self.session, self.store.id, [CustomerIn(source="test", email=self.email)]
        )[0].customer_id
        self.model = Model()
        self.orders: list[ModelOrder] = []
        self.done: list[tuple[str, str, Any, MutationOut]] = []  # (operation, key, body, result)

    def _key(self) -> str:
        return f"m{self.tag}-{next(_counter)}"

    # ---- operations ------------------------------------------------------------------------

    @rule(points=st.integers(1, 800))
    def earn(self, points: int) -> None:
        key = self._key()
        body = PointsIn(kind="earn", points=points, reason="earn")
        result, replayed = change_points(
            self.session,
            store_id=self.store.id,
            customer_id=self.customer_id,
            points_in=body,
            idempotency_key=key,
        )
        assert not replayed
        self.model.credit_now(points, self.clock.now())
        self.done.append(("points", key, body, result))

    @rule(points=st.integers(1, 1200))
    def spend(self, points: int) -> None:
        key = self._key()
        body = PointsIn(kind="adjust", points=-points, reason="spend")
        expected = self.model.copy()
        try:
            expected.debit(points, self.clock.now())
        except InsufficientPointsError:
            with pytest.raises(InsufficientPointsError, match="insufficient points"):
                change_points(
                    self.session,
                    store_id=self.store.id,
                    customer_id=self.customer_id,
                    points_in=body,
                    idempotency_key=key,
                )
            return
        result, _ = change_points(
            self.session,
            store_id=self.store.id,
            customer_id=self.customer_id,
            points_in=body,
            idempotency_key=key,
        )
        self.model = expected
        self.done.append(("points", key, body, result))

    @rule()
    def redeem_coupon(self) -> None:
        key = self._key()
        body = RedemptionIn(reward="coupon-5")
        expected = self.model.copy()
        try:
            expected.debit(500, self.clock.now())
        except InsufficientPointsError:
            with pytest.raises(InsufficientPointsError):
                redeem(
                    self.session,
                    store_id=self.store.id,
                    customer_id=self.customer_id,
                    redemption_in=body,
                    idempotency_key=key,
                )
            return
        result, _ = redeem(
            self.session,
            store_id=self.store.id,
            customer_id=self.customer_id,
            redemption_in=body,
            idempotency_key=key,
        )
        assert result.coupon is not None
        self.model = expected
        self.done.append(("redeem", key, body, result))

    def _sync(self, order: ModelOrder, refund: RefundIn | None = None) -> None:
        placed = order.placed_at
        order_in = OrderIn(
            source="test",
            external_id=order.external_id,
            currency="USD",
            placed_at=placed,
            paid_at=placed,
            delivered_at=placed,
            subtotal=order.total,
            total=order.total,
            email=self.email,
            refunds=[refund] if refund else [],
        )
        ids = upsert_orders(self.session, self.store, [order_in]).order_ids
        sync_order_points(self.session, self.store, ids)

    @rule(dollars=st.integers(1, 150))
    def place_order(self, dollars: int) -> None:
        order = ModelOrder(f"o{self.tag}-{next(_counter)}", self.clock.now(), Decimal(dollars))
        self.orders.append(order)
        self._sync(order)
        now = self.clock.now()
        order.earned = dollars * 10
        self.model.credit_pending(order.earned, now + WINDOW, len(self.orders) - 1)
        self.model.activate_due(now)
        self.model.expire_lapsed(now)

    @precondition(lambda self: bool(self.orders))
    @rule(pick=st.integers(0, 10_000), cents=st.integers(1, 20_000))
    def refund(self, pick: int, cents: int) -> None:
        index = pick % len(self.orders)
        order = self.orders[index]
        order.refunds += 1
        amount = Decimal(cents) / 100
        refund = RefundIn(
            external_id=f"{order.external_id}-r{order.refunds}",
            amount=amount,
            refunded_at=self.clock.now(),
        )
        self._sync(order, refund)
        order.refunded = min(order.refunded + amount, order.total)
        if order.refunded >= order.total:
            target = order.earned
        else:
            target = int(Decimal(order.earned) * order.refunded / order.total)
        now = self.clock.now()
        if target > order.reversed:
            self.model.debit(target - order.reversed, now, order=index)
            order.reversed = target
        self.model.activate_due(now)
        self.model.expire_lapsed(now)

    @rule()
    def run_activation(self) -> None:
        activate_due(self.session, self.store.id, self.clock.now())
        self.model.activate_due(self.clock.now())

    @rule()
    def run_expiry(self) -> None:
        expire_due(self.session, self.store.id, self.clock.now())
        self.model.expire_lapsed(self.clock.now())

    @rule(days=st.sampled_from([1, 7, 29, 30, 31, 90, 200, 365, 400]))
    def move_clock(self, days: int) -> None:
        self.clock.advance(timedelta(days=days))

    @precondition(lambda self: bool(self.done))
    @rule(pick=st.integers(0, 10_000))
    def replay(self, pick: int) -> None:
        operation, key, body, first = self.done[pick % len(self.done)]
        if operation == "points":
            again, replayed = change_points(
                self.session,
                store_id=self.store.id,
                customer_id=self.customer_id,
                points_in=body,
                idempotency_key=key,
            )
        else:
            again, replayed = redeem(
                self.session,
                store_id=self.store.id,
                customer_id=self.customer_id,
                redemption_in=body,
                idempotency_key=key,
            )
        assert replayed and again == first

    @precondition(lambda self: bool(self.done))
    @rule(pick=st.integers(0, 10_000))
    def replay_with_another_body(self, pick: int) -> None:
        _, key, _, _ = self.done[pick % len(self.done)]
        with pytest.raises(IdempotencyKeyReusedError):
            change_points(
                self.session,
                store_id=self.store.id,
                customer_id=self.customer_id,
                points_in=PointsIn(kind="earn", points=1, reason="not the same"),
                idempotency_key=key,
            )

    # ---- checks ----------------------------------------------------------------------------

    @invariant()
    def ledger_agrees_with_the_model(self) -> None:
        row = repository.get_member(self.session, self.store.id, self.customer_id)
        if row is None:
            assert (self.model.available, self.model.pending, self.model.debt) == (0, 0, 0)
            return
        actual = (row["available_points"], row["pending_points"], row["debt_points"])
        assert actual == (self.model.available, self.model.pending, self.model.debt)
        lots = sorted(repository.lots_of_member(self.session, row["id"]), key=lambda r: r["id"])
        assert [lot["remaining"] for lot in lots] == [lot.remaining for lot in self.model.lots]
        assert [lot["activated_at"] is not None for lot in lots] == [
            lot.active for lot in self.model.lots
        ]

    @invariant()
    def never_negative_except_owed(self) -> None:
        assert self.model.pending >= 0 and self.model.debt >= 0
        assert self.model.available >= 0 or self.model.available == -self.model.debt

    def teardown(self) -> None:
        """At the end of each run, `verify` proves the whole store's ledger."""
        report = verify(self.session, self.store.id)
        assert report.ok, report.as_dict()


def test_ledger_state_machine(session: Session, store: Store) -> None:
    program = Program(tiers=[Tier(name="member")], rewards=default_program().rewards)
    set_program(session, store.id, program, source="test")
    previous = get_clock()
    LedgerMachine.session = session
    LedgerMachine.store = store
    try:
        run_state_machine_as_test(
            LedgerMachine,
            settings=settings(
                max_examples=25,
                stateful_step_count=30,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
    finally:
        set_clock(previous)
