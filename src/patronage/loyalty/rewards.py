"""Rewards: the catalog, points + cash, and unique single-use coupon codes."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from sqlalchemy.orm import Session

from patronage.errors import ValidationFailedError
from patronage.kit.money import minor_units
from patronage.loyalty import repository
from patronage.loyalty.errors import CouponNotRedeemableError, InsufficientPointsError
from patronage.loyalty.program import PointsForCash

# Crockford's base 32 without I, L, O, U: no code reads as another or as a word.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CODE_ATTEMPTS = 8


def new_coupon_code(prefix: str = "PTR") -> str:
    """A random code like PTR-7KQ2-M9XD (40 bits of randomness)."""
    body = "".join(secrets.choice(_ALPHABET) for _ in range(8))
    return f"{prefix}-{body[:4]}-{body[4:]}"


def issue_coupon(
    session: Session,
    *,
    store_id: int,
    member_id: int,
    entry_id: int | None,
    reward: str,
    kind: str,
    value: Decimal | None,
    currency: str | None,
    valid_days: int,
    now: datetime,
) -> dict[str, Any]:
    """Insert a coupon with a code no other coupon of the store has; return it.

    The unique constraint on (store, code) is the guarantee; checking first only makes a
    collision (one in a trillion per pair) cost a retry instead of the transaction.
    """
    for _ in range(_CODE_ATTEMPTS):
        code = new_coupon_code()
        if not repository.coupon_code_exists(session, store_id, code):
            break
    else:  # pragma: no cover - astronomically unlikely
        raise RuntimeError("could not find a free coupon code")
    expires_at = now + timedelta(days=valid_days)
    repository.insert_coupon(
        session,
        {
            "store_id": store_id,
            "member_id": member_id,
            "entry_id": entry_id,
            "code": code,
            "reward": reward,
            "kind": kind,
            "value": value,
            "currency": currency,
            "issued_at": now,
            "expires_at": expires_at,
            "used_at": None,
            "used_reference": None,
        },
    )
    return {
        "code": code,
        "reward": reward,
        "kind": kind,
        "value": str(value) if value is not None else None,
        "currency": currency,
        "expires_at": expires_at.isoformat(),
    }


def use_coupon(
    session: Session, *, store_id: int, code: str, now: datetime, reference: str | None = None
) -> None:
    """Mark a coupon used; a second use, an expired or an unknown code is refused."""
    if not repository.mark_coupon_used(
        session, store_id, code.strip().upper(), now=now, reference=reference
    ):
        raise CouponNotRedeemableError(f"coupon {code} is unknown, expired or already used")


@dataclass(frozen=True)
class CashQuote:
    """Points + cash: how many points pay how much of an order."""

    points: int
    value: Decimal
    cap: Decimal


def quote_points_for_cash(
    rule: PointsForCash,
    *,
    order_total: Decimal,
    currency: str,
    rate_to_base: Decimal,
    available: int,
    requested: int | None,
) -> CashQuote:
    """How many points to take and what they pay, capped at `max_share` of the order.

    Points are worth 1 / `points_per_unit` of the base currency; the value is rounded down to the
    order currency's minor unit and the points charged are exactly what that value costs.
    """
    if not rule.enabled:
        raise ValidationFailedError("points + cash is not enabled in this program")
    places = Decimal(1).scaleb(-minor_units(currency))
    cap = (order_total * rule.max_share).quantize(places, rounding=ROUND_FLOOR)
    wanted = requested if requested is not None else max(available, 0)
    if requested is not None and requested > available:
        raise InsufficientPointsError(
            f"insufficient points: {max(available, 0)} available, {requested} needed",
            available=max(available, 0),
            needed=requested,
        )
    value_base = Decimal(wanted) / Decimal(rule.points_per_unit)
    value = min((value_base / rate_to_base).quantize(places, rounding=ROUND_FLOOR), cap)
    points = int(
        (value * rate_to_base * rule.points_per_unit).to_integral_value(rounding=ROUND_CEILING)
    )
    if points > available:  # rounding up the cost of a rounded-down value; step back one unit
        value -= places
        points = int(
            (value * rate_to_base * rule.points_per_unit).to_integral_value(rounding=ROUND_CEILING)
        )
    if points < rule.min_points or value <= 0:
        raise InsufficientPointsError(
            f"insufficient points: points + cash needs at least {rule.min_points} points "
            f"({max(available, 0)} available)",
            available=max(available, 0),
            needed=rule.min_points,
        )
    return CashQuote(points=points, value=value, cap=cap)
