"""Orders earn points by themselves: pending until the return window has passed, reversed in
proportion to refunds, cancelled with the order; and the jobs that activate and expire points.

`sync_order_points` is idempotent: what it did for an order is kept in `loyalty_orders` and every
entry it writes has a key derived from the order, so running it again changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from patronage.kit.clock import utcnow
from patronage.loyalty import repository
from patronage.loyalty.ledger import MemberBook, load_program, new_member_row
from patronage.loyalty.program import (
    Program,
    earning_base,
    local_date,
    order_multipliers,
    points_for,
    stacked_multiplier,
)
from patronage.loyalty.tiers import TierChanges, evaluate_tiers, refresh_tiers
from patronage.stores.models import Store

__all__ = [
    "ExpirySummary",
    "SyncSummary",
    "activate_due",
    "evaluate_tiers",
    "expire_due",
    "open_members",
    "sync_order_points",
]

_PAID_STATUSES = {"paid", "partially_refunded", "refunded", "partially_paid"}


@dataclass
class SyncSummary:
    """What a sync of order points did."""

    orders: int = 0
    earned: int = 0
    reversed: int = 0
    activated: int = 0
    expired: int = 0
    flagged: int = 0
    tiers: TierChanges = field(default_factory=TierChanges)


def open_members(
    session: Session,
    *,
    store_id: int,
    member_ids: Sequence[int],
    program: Program,
    program_version: int,
    now: datetime,
) -> list[MemberBook]:
    """Lock several members in id order (one fixed order, so lockers never deadlock)."""
    return [
        MemberBook(
            session,
            store_id=store_id,
            member=row,
            program=program,
            program_version=program_version,
            now=now,
        )
        for row in repository.lock_members_by_id(session, store_id, member_ids)
    ]


def is_paid(order: dict[str, Any]) -> bool:
    """Whether the order was paid (any later step implies it was)."""
    return (
        order["paid_at"] is not None
        or order["shipped_at"] is not None
        or order["delivered_at"] is not None
        or (order["financial_status"] or "").lower() in _PAID_STATUSES
    )


def activation_time(program: Program, order: dict[str, Any]) -> datetime | None:
    """When an order's points become spendable: the return window after delivery (or, with no
    delivery known, `undelivered_activation_days` after payment)."""
    if order["delivered_at"] is not None:
        return order["delivered_at"] + timedelta(days=program.returns.window_days)
    fallback = program.returns.undelivered_activation_days
    paid = order["paid_at"] or order["shipped_at"]
    if fallback is not None and paid is not None:
        return paid + timedelta(days=fallback)
    return None


def reversal_target(earned: int, order: dict[str, Any]) -> int:
    """Points to have reversed for an order: all when cancelled or wholly refunded, otherwise
    earned x refunded / total rounded down; never more than was earned."""
    if earned <= 0:
        return 0
    if order["cancelled_at"] is not None:
        return earned
    total, refunded = order["total"], order["refunded"]
    if refunded <= 0:
        return 0
    if total <= 0 or refunded >= total:
        return earned
    return min(int(Decimal(earned) * refunded / total), earned)


def sync_order_points(
    session: Session, store: Store, order_ids: Sequence[int], *, now: datetime | None = None
) -> SyncSummary:
    """Bring the points of these orders up to date (stores without a program: nothing happens).

    Paid orders of known customers earn once, pending until activation; delivery (re)schedules
    activation; refunds reverse in proportion; cancellation reverses everything the order earned.
    Members touched are locked in id order, settled (due points activate, lapsed ones expire) and
    their tiers refreshed, so an order that lifts a member into a tier upgrades them at once.
    """
    summary = SyncSummary()
    moment = now or utcnow()
    found = load_program(session, store.id)
    if found is None or not order_ids:
        return summary
    version, program = found
    rows = [
        row
        for row in repository.orders_for_points(session, store.id, order_ids)
        if row["customer_id"] is not None
    ]
    if not rows:
        return summary
    states = repository.order_states(session, store.id, [row["id"] for row in rows])
    needs_member = {
        row["customer_id"]
        for row in rows
        if row["id"] not in states and is_paid(row) and row["cancelled_at"] is None
    }
    repository.ensure_members(
        session,
        [new_member_row(store.id, customer_id, program, moment) for customer_id in needs_member],
    )
    member_of = repository.member_ids_by_customer(
        session, store.id, {row["customer_id"] for row in rows}
    )
    by_member: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        member_id = member_of.get(row["customer_id"])
        if member_id is not None:
            by_member.setdefault(member_id, []).append(row)
    birthdays = repository.birthdays(session, store.id, {row["customer_id"] for row in rows})
    books = open_members(
        session,
        store_id=store.id,
        member_ids=list(by_member),
        program=program,
        program_version=version,
        now=moment,
    )
    for book in books:
        member_orders = sorted(by_member[book.member_id], key=lambda o: (o["placed_at"], o["id"]))
        for order in member_orders:
            summary.orders += 1
            _sync_one(session, book, program, store, order, states, birthdays, summary)
        activated, expired = book.settle()
        summary.activated += activated
        summary.expired += expired
        summary.flagged += sum(1 for notice in book.notices if notice["kind"] == "refund_review")
        book.save()
    summary.tiers = refresh_tiers(
        session, store_id=store.id, program=program, now=moment, member_ids=list(by_member)
    )
    return summary


def _sync_one(
    session: Session,
    book: MemberBook,
    program: Program,
    store: Store,
    order: dict[str, Any],
    states: dict[int, dict[str, Any]],
    birthdays: dict[int, Any],
    summary: SyncSummary,
) -> None:
    order_id = order["id"]
    state = states.get(order_id)
    activates_at = activation_time(program, order)
    if state is None:
        if not is_paid(order) or order["cancelled_at"] is not None:
            return
        if order["total"] > 0 and order["refunded"] >= order["total"]:
            return  # wholly refunded before it ever earned
        earned = _earn(session, book, program, store, order, activates_at, birthdays)
        summary.earned += earned
        state = {"earned_points": earned, "reversed_points": 0, "cancelled": False}
        states[order_id] = state
    else:
        for lot in book.order_lots(order_id):
            if not lot.active and activates_at is not None and lot.activates_at != activates_at:
                book.schedule(lot, activates_at)
    target = reversal_target(state["earned_points"], order)
    cancelled = order["cancelled_at"] is not None
    if target > state["reversed_points"]:
        delta = target - state["reversed_points"]
        book.debit(
            kind="reverse",
            points=delta,
            key=f"order:{order_id}:reverse:{target}",
            shortfall_policy=program.returns.spent_points_policy,
            reason="order cancelled" if cancelled else "order refunded",
            order_id=order_id,
            details={"refunded": str(order["refunded"]), "total": str(order["total"])},
        )
        summary.reversed += delta
        repository.update_order_state(
            session,
            order_id,
            book.store_id,
            reversed_points=target,
            cancelled=cancelled,
            updated_at=book.now,
        )
        state["reversed_points"] = target
        state["cancelled"] = cancelled
    elif cancelled and not state["cancelled"]:
        repository.update_order_state(
            session, order_id, book.store_id, cancelled=True, updated_at=book.now
        )
        state["cancelled"] = True


def _earn(
    session: Session,
    book: MemberBook,
    program: Program,
    store: Store,
    order: dict[str, Any],
    activates_at: datetime | None,
    birthdays: dict[int, Any],
) -> int:
    """Credit an order's points (pending) and any task it completes; return the points."""
    base_amount = earning_base(
        program,
        subtotal=order["subtotal"],
        discount=order["discount"],
        shipping=order["shipping"],
        tax=order["tax"],
        fx_rate=order["fx_rate"],
    )
    placed_on = local_date(order["placed_at"], store.timezone)
    factors = order_multipliers(
        program,
        tier=book.tier,
        placed_on=placed_on,
        birthday=birthdays.get(order["customer_id"]),
    )
    multiplier = stacked_multiplier(program, factors)
    points = points_for(program, base_amount, multiplier)
    if points > 0:
        book.credit(
            kind="earn",
            points=points,
            key=f"order:{order['id']}:earn",
            pending=True,
            activates_at=activates_at,
            order_id=order["id"],
            reason=f"order {order['id']}",
            details={
                "base_amount": str(base_amount.quantize(Decimal("0.0001"))),
                "currency": store.base_currency,
                "multiplier": str(multiplier),
                "tier": book.tier,
            },
        )
    repository.insert_order_state(
        session,
        {
            "store_id": book.store_id,
            "order_id": order["id"],
            "member_id": book.member_id,
            "placed_at": order["placed_at"],
            "earned_points": points,
            "reversed_points": 0,
            "cancelled": False,
            "updated_at": book.now,
        },
    )
    task_points = _complete_tasks(session, book, program, store, order, activates_at, placed_on)
    if task_points:
        repository.update_order_state(
            session, order["id"], book.store_id, earned_points=points + task_points
        )
    return points + task_points


def _complete_tasks(
    session: Session,
    book: MemberBook,
    program: Program,
    store: Store,
    order: dict[str, Any],
    activates_at: datetime | None,
    placed_on: Any,
) -> int:
    """Award monthly order tasks this order completes; the bonus rides on the order (pending
    with it, reversed with it)."""
    if not program.tasks:
        return 0
    zone = ZoneInfo(store.timezone)
    month_start = datetime(placed_on.year, placed_on.month, 1, tzinfo=zone)
    next_month = (month_start + timedelta(days=32)).replace(day=1)
    count = repository.earned_orders_between(
        session, book.member_id, month_start.astimezone(UTC), next_month.astimezone(UTC)
    )
    awarded = 0
    for index, task in enumerate(program.tasks):
        key = f"task:{index}:{book.member_id}:{placed_on:%Y-%m}"
        if count >= task.orders and task.points > 0:
            if repository.entry_key_exists(session, book.store_id, key):
                continue
            book.credit(
                kind="task",
                points=task.points,
                key=key,
                pending=True,
                activates_at=activates_at,
                order_id=order["id"],
                reason=task.name,
                details={"task": task.name, "month": f"{placed_on:%Y-%m}"},
            )
            awarded += task.points
    return awarded


@dataclass
class ExpirySummary:
    """What a run of the activation or expiry job did."""

    members: int = 0
    activated: int = 0
    expired: int = 0
    reminders: int = 0
    referrals_rewarded: int = 0


def _settle_members(
    session: Session, store_id: int, now: datetime, *, activate: bool, expire: bool
) -> ExpirySummary:
    summary = ExpirySummary()
    found = load_program(session, store_id)
    if found is None:
        return summary
    version, program = found
    member_ids = repository.members_with_due_lots(session, store_id, now)
    for start in range(0, len(member_ids), 200):
        books = open_members(
            session,
            store_id=store_id,
            member_ids=member_ids[start : start + 200],
            program=program,
            program_version=version,
            now=now,
        )
        for book in books:
            summary.members += 1
            if activate:
                summary.activated += book.activate_due()
            if expire:
                summary.expired += book.expire_lapsed()
            book.save()
    return summary


def activate_due(session: Session, store_id: int, now: datetime) -> ExpirySummary:
    """Activate the pending points whose return window has passed, and reward the referrals
    whose friend's first order has passed it."""
    from patronage.loyalty.referrals import reward_due_referrals

    summary = _settle_members(session, store_id, now, activate=True, expire=False)
    summary.referrals_rewarded = reward_due_referrals(session, store_id, now)
    return summary


def expire_due(session: Session, store_id: int, now: datetime) -> ExpirySummary:
    """Expire lapsed points and queue the reminders of points about to lapse.

    Each lapse date gets up to three reminders (the program's `reminder_days`, 30/7/1 by
    default); a run sends the one whose day has come, once (`loyalty_notices` dedupes).
    """
    summary = _settle_members(session, store_id, now, activate=False, expire=True)
    found = load_program(session, store_id)
    if found is None:
        return summary
    _, program = found
    days = sorted(program.expiry.reminder_days)
    if not days:
        return summary
    rows = []
    for member_id, customer_id, expires_at, points in repository.lots_expiring_between(
        session, store_id, now, now + timedelta(days=days[-1])
    ):
        left = expires_at - now
        stage = next(day for day in days if left <= timedelta(days=day))
        rows.append(
            {
                "store_id": store_id,
                "member_id": member_id,
                "kind": "points_expiring",
                "dedupe_key": f"expiry:{member_id}:{expires_at.isoformat()}:{stage}",
                "payload": {
                    "customer_id": customer_id,
                    "points": points,
                    "expires_at": expires_at.isoformat(),
                    "days_before": stage,
                },
                "created_at": now,
            }
        )
    repository.add_notices(session, rows)
    summary.reminders = len(rows)
    return summary
