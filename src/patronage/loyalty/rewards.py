"""Rewards: the catalog, points + cash, and unique single-use coupon codes."""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from patronage.errors import NotFoundError, ValidationFailedError
from patronage.kit.money import minor_units, quantize
from patronage.loyalty import repository
from patronage.loyalty.errors import CouponNotRedeemableError, InsufficientPointsError
from patronage.loyalty.models import Coupon, LoyaltyMember
from patronage.loyalty.program import PointsForCash, Program
from patronage.loyalty.schemas import (
    CatalogOut,
    CouponStatusOut,
    PointsForCashOut,
    RewardOut,
)

# Crockford's base 32 without I, L, O, U: no code reads as another or as a word.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CODE_ATTEMPTS = 8


# Codes come from the operating system's randomness, except inside `seeded_codes` (the demo).
_CODE_RANDOM: ContextVar[random.Random | None] = ContextVar("coupon_code_random", default=None)


def random_code_characters(count: int) -> str:
    """`count` random characters of the code alphabet."""
    seeded = _CODE_RANDOM.get()
    if seeded is not None:
        return "".join(seeded.choice(_ALPHABET) for _ in range(count))
    return "".join(secrets.choice(_ALPHABET) for _ in range(count))


@contextmanager
def seeded_codes(seed: str) -> Iterator[None]:
    """Draw coupon and referral codes from a seeded generator (reproducible builds only)."""
    token = _CODE_RANDOM.set(random.Random(seed))
    try:
        yield
    finally:
        _CODE_RANDOM.reset(token)


def new_coupon_code(prefix: str = "PTR") -> str:
    """A random code like PTR-7KQ2-M9XD (40 bits of randomness)."""
    body = random_code_characters(8)
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


def _coupon_row(session: Session, store_id: int, code: str) -> tuple[Coupon, int]:
    found = session.execute(
        select(Coupon, LoyaltyMember.customer_id)
        .join(LoyaltyMember, LoyaltyMember.id == Coupon.member_id)
        .where(Coupon.store_id == store_id, Coupon.code == code.strip().upper())
    ).first()
    if found is None:
        raise NotFoundError(f"no coupon {code.strip().upper()!r} in this store")
    return found[0], found[1]


def _refusal(coupon: Coupon, now: datetime) -> str | None:
    if coupon.used_at is not None:
        reference = f" (order {coupon.used_reference})" if coupon.used_reference else ""
        return f"coupon {coupon.code} was already used on {coupon.used_at:%Y-%m-%d %H:%M} UTC" + (
            reference
        )
    if coupon.expires_at is not None and coupon.expires_at <= now:
        return f"coupon {coupon.code} expired on {coupon.expires_at:%Y-%m-%d %H:%M} UTC"
    return None


def coupon_status(session: Session, *, store_id: int, code: str, now: datetime) -> CouponStatusOut:
    """Whether a coupon can be used now, its value and expiry, and why not if it cannot."""
    coupon, customer_id = _coupon_row(session, store_id, code)
    reason = _refusal(coupon, now)
    return CouponStatusOut(
        code=coupon.code,
        customer_id=customer_id,
        reward=coupon.reward,
        kind=coupon.kind,
        value=(
            quantize(coupon.value, coupon.currency or "USD") if coupon.value is not None else None
        ),
        currency=coupon.currency,
        issued_at=coupon.issued_at,
        expires_at=coupon.expires_at,
        used=coupon.used_at is not None,
        used_at=coupon.used_at,
        used_reference=coupon.used_reference,
        valid=reason is None,
        reason=reason,
    )


def use_coupon(
    session: Session, *, store_id: int, code: str, now: datetime, reference: str | None = None
) -> CouponStatusOut:
    """Use a coupon once and return it used; an unknown code is NotFoundError, a second use or
    an expired code CouponNotRedeemableError saying which.

    The update is conditional on the coupon being unused and unexpired, so of two concurrent
    uses exactly one succeeds.
    """
    coupon, _ = _coupon_row(session, store_id, code)
    reason = _refusal(coupon, now)
    if reason is None:
        result = session.execute(
            update(Coupon)
            .where(
                Coupon.id == coupon.id,
                Coupon.used_at.is_(None),
                (Coupon.expires_at.is_(None)) | (Coupon.expires_at > now),
            )
            .values(used_at=now, used_reference=reference)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            session.expire(coupon)
            return coupon_status(session, store_id=store_id, code=code, now=now)
        session.refresh(coupon)
        reason = _refusal(coupon, now) or f"coupon {coupon.code} cannot be used"
    raise CouponNotRedeemableError(reason, code=coupon.code)


def catalog(program: Program, *, version: int, currency: str) -> CatalogOut:
    """The program's rewards with their costs, and the points + cash rule in words."""
    rule = program.points_for_cash
    places = Decimal(1).scaleb(-minor_units(currency))
    unit = (Decimal(1)).quantize(places)
    text = (
        f"{rule.points_per_unit} points pay {unit} {currency}, for at most "
        f"{rule.max_share:.0%} of an order (at least {rule.min_points} points)"
        if rule.enabled
        else "points + cash is not enabled"
    )
    return CatalogOut(
        program_version=version,
        rewards=[
            RewardOut(
                code=reward.code,
                name=reward.name,
                kind=reward.kind,
                cost_points=reward.cost_points,
                value=reward.value,
                currency=currency if reward.value is not None else None,
                valid_days=reward.valid_days,
            )
            for reward in program.rewards
        ],
        points_for_cash=PointsForCashOut(
            enabled=rule.enabled,
            points_per_unit=rule.points_per_unit,
            max_share=rule.max_share,
            min_points=rule.min_points,
            valid_days=rule.valid_days,
            currency=currency,
            text=text,
        ),
    )


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
