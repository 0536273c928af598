"""Tiers: qualification on rolling spend, orders and repurchase rate; upgrades at once,
downgrades only at a review after a grace period; progress and standing.

A member's repurchase rate over the window is the share of their orders that were repeat orders,
(orders - 1) / orders: one order is 0 %, two are 50 %, five are 80 %. Spend is the base-currency
total of paid orders net of refunds; cancelled and wholly refunded orders do not count. Spending
points never changes any of this, so it never demotes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any

from sqlalchemy.orm import Session

from patronage.loyalty import repository
from patronage.loyalty.program import Program, Thresholds, add_months

ZERO = Decimal(0)
_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CNY": "¥", "INR": "₹"}


@dataclass(frozen=True)
class Metrics:
    """A member's figures over the rolling window."""

    spend: Decimal = ZERO
    orders: int = 0

    @property
    def repurchase_rate(self) -> Decimal:
        """Repeat orders as a share of all orders in the window."""
        if self.orders <= 0:
            return ZERO
        return Decimal(self.orders - 1) / Decimal(self.orders)


def meets(thresholds: Thresholds, metrics: Metrics) -> bool:
    """Whether the metrics satisfy every threshold."""
    return (
        metrics.spend >= thresholds.min_spend
        and metrics.orders >= thresholds.min_orders
        and metrics.repurchase_rate >= thresholds.min_repurchase_rate
    )


def entry_rank(program: Program, metrics: Metrics) -> int:
    """The highest tier whose entry thresholds the metrics meet."""
    rank = 0
    for index, tier in enumerate(program.tiers):
        if meets(tier.entry, metrics):
            rank = index
    return rank


def kept_rank(program: Program, metrics: Metrics, current: int) -> int:
    """The highest tier up to `current` whose retention thresholds the metrics meet."""
    for index in range(current, -1, -1):
        if meets(program.tiers[index].keeps(), metrics):
            return index
    return 0


def window_start(program: Program, now: datetime) -> datetime:
    """Start of the rolling window that ends now."""
    return add_months(now, -program.evaluation.window_months)


def review_period_start(program: Program, now: datetime) -> datetime:
    """Start of the current review period (month, quarter or year, UTC)."""
    cadence = program.evaluation.cadence
    if cadence == "monthly":
        month = now.month
    elif cadence == "quarterly":
        month = (now.month - 1) // 3 * 3 + 1
    else:
        month = 1
    return datetime(now.year, month, 1, tzinfo=UTC)


def money_text(amount: Decimal, currency: str) -> str:
    """An amount for people: $200.00, €15.50, 1,200.00 CHF."""
    rounded = amount.quantize(Decimal("0.01"), rounding=ROUND_CEILING)
    symbol = _SYMBOLS.get(currency)
    return f"{symbol}{rounded:,.2f}" if symbol else f"{rounded:,.2f} {currency}"


def progress(program: Program, tier: str, metrics: Metrics, currency: str) -> dict[str, Any]:
    """What the member still needs for the next tier, with a sentence saying so."""
    rank = program.tier_rank(tier)
    if rank + 1 >= len(program.tiers):
        return {
            "next_tier": None,
            "percent": 100,
            "text": f"You are in our highest tier, {tier.title()}.",
        }
    target = program.tiers[rank + 1]
    spend_needed = max(target.entry.min_spend - metrics.spend, ZERO)
    orders_needed = max(target.entry.min_orders - metrics.orders, 0)
    rate_needed = max(target.entry.min_repurchase_rate - metrics.repurchase_rate, ZERO)
    parts = []
    if spend_needed > 0:
        parts.append(f"spend {money_text(spend_needed, currency)} more")
    if orders_needed > 0:
        parts.append(f"place {orders_needed} more order{'s' if orders_needed > 1 else ''}")
    if rate_needed > 0 and not orders_needed:
        parts.append("come back for another order")
    name = target.name.title()
    if parts:
        sentence = " and ".join(parts)
        text = f"{sentence[0].upper()}{sentence[1:]} to reach {name}."
    else:
        text = f"You qualify for {name} at the next update."
    shares = []
    if target.entry.min_spend > 0:
        shares.append(min(metrics.spend / target.entry.min_spend, Decimal(1)))
    if target.entry.min_orders > 0:
        shares.append(min(Decimal(metrics.orders) / target.entry.min_orders, Decimal(1)))
    percent = int(min(shares) * 100) if shares else 100
    return {
        "next_tier": target.name,
        "spend_needed": spend_needed.quantize(Decimal("0.01"), rounding=ROUND_CEILING),
        "orders_needed": orders_needed,
        "repurchase_rate_needed": rate_needed.quantize(Decimal("0.0001")),
        "percent": percent,
        "text": text,
    }


def standing_percent(below: int, total: int) -> int:
    """Share of the other members this one is ahead of, in whole percent (rounded down)."""
    others = total - 1
    if others <= 0:
        return 100
    return int(Decimal(below) * 100 / Decimal(others))


@dataclass
class TierChanges:
    """What a tier refresh did."""

    members: int = 0
    upgraded: list[tuple[int, str, str]] = field(default_factory=list)
    downgraded: list[tuple[int, str, str]] = field(default_factory=list)
    warned: list[int] = field(default_factory=list)
    heritage: list[int] = field(default_factory=list)


def refresh_tiers(
    session: Session,
    *,
    store_id: int,
    program: Program,
    now: datetime,
    member_ids: list[int] | None = None,
    review: bool = False,
) -> TierChanges:
    """Recompute rolling figures and tiers of some members (all when `member_ids` is None).

    Upgrades happen at once. With `review`, members not yet reviewed this period are reviewed:
    below their tier's retention thresholds they are warned and given `grace_days`; still below
    at a later review after the grace, they move down to the highest tier they keep.
    """
    changes = TierChanges()
    rows = (
        repository.all_member_rows(session, store_id)
        if member_ids is None
        else repository.member_tier_rows(session, store_id, member_ids)
    )
    if not rows:
        return changes
    metrics_by_member = repository.tier_metrics(
        session,
        store_id,
        window_start=window_start(program, now),
        now=now,
        member_ids=None if member_ids is None else [row["id"] for row in rows],
    )
    heritage_cutoff = add_months(now, -12 * program.heritage_years)
    without_heritage = [row["id"] for row in rows if row["heritage_since_at"] is None]
    first_seen = (
        repository.first_order_at(session, store_id, without_heritage) if without_heritage else {}
    )
    period_start = review_period_start(program, now)
    grace = timedelta(days=program.evaluation.grace_days)
    updates: list[dict[str, Any]] = []
    notices: list[dict[str, Any]] = []

    def notice(row: dict[str, Any], kind: str, key: str, payload: dict[str, Any]) -> None:
        notices.append(
            {
                "store_id": store_id,
                "member_id": row["id"],
                "kind": kind,
                "dedupe_key": key,
                "payload": {"customer_id": row["customer_id"], **payload},
                "created_at": now,
            }
        )

    for row in rows:
        changes.members += 1
        spend, orders = metrics_by_member.get(row["id"], (ZERO, 0))
        metrics = Metrics(spend, orders)
        update: dict[str, Any] = {}
        if spend != row["rolling_spend"] or orders != row["rolling_orders"]:
            update.update(rolling_spend=spend, rolling_orders=orders)
        current = program.tier_rank(row["tier"])
        if program.tiers[current].name != row["tier"]:
            update.update(tier=program.tiers[current].name, tier_since_at=now)
        reachable = entry_rank(program, metrics)
        stamp = now.strftime("%Y%m%d")
        if reachable > current:
            new_name = program.tiers[reachable].name
            update.update(tier=new_name, tier_since_at=now, downgrade_due_at=None)
            changes.upgraded.append((row["id"], row["tier"], new_name))
            notice(
                row,
                "tier_upgraded",
                f"tier:{row['id']}:{new_name}:{stamp}",
                {"from": row["tier"], "to": new_name},
            )
        elif review and (row["tier_reviewed_at"] is None or row["tier_reviewed_at"] < period_start):
            update["tier_reviewed_at"] = now
            kept = kept_rank(program, metrics, current)
            if kept == current:
                if row["downgrade_due_at"] is not None:
                    update["downgrade_due_at"] = None
            elif row["downgrade_due_at"] is None:
                update["downgrade_due_at"] = now + grace
                changes.warned.append(row["id"])
                notice(
                    row,
                    "tier_downgrade_warning",
                    f"tier-warning:{row['id']}:{stamp}",
                    {"tier": row["tier"], "downgrade_due_at": (now + grace).isoformat()},
                )
            elif now >= row["downgrade_due_at"]:
                new_name = program.tiers[kept].name
                update.update(tier=new_name, tier_since_at=now, downgrade_due_at=None)
                changes.downgraded.append((row["id"], row["tier"], new_name))
                notice(
                    row,
                    "tier_downgraded",
                    f"tier:{row['id']}:{new_name}:{stamp}",
                    {"from": row["tier"], "to": new_name},
                )
        first = first_seen.get(row["id"])
        if row["heritage_since_at"] is None and first is not None and first <= heritage_cutoff:
            update["heritage_since_at"] = now
            changes.heritage.append(row["id"])
            notice(row, "heritage_member", f"heritage:{row['id']}", {"since": first.isoformat()})
        if update:
            updates.append({"member_id": row["id"], **update})
    repository.update_members(session, updates)
    repository.add_notices(session, notices)
    return changes


def evaluate_tiers(session: Session, store_id: int, now: datetime) -> TierChanges:
    """The periodic evaluation: refresh every member and review those due this period."""
    from patronage.loyalty.program import require_program

    _, program = require_program(session, store_id)
    return refresh_tiers(session, store_id=store_id, program=program, now=now, review=True)
