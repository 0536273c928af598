"""Referrals: codes, fraud checks that block and explain, and the reward after the friend's
first order has passed the return window."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from patronage.db.conflicts import retry_on_conflict
from patronage.errors import NotFoundError
from patronage.kit.clock import utcnow
from patronage.loyalty import repository
from patronage.loyalty.ledger import load_program, open_member
from patronage.loyalty.models import LoyaltyMember, Referral
from patronage.loyalty.orders import open_members
from patronage.loyalty.program import Program
from patronage.loyalty.rewards import random_code_characters
from patronage.loyalty.schemas import MemberReferralsOut, ReferralOut
from patronage.orders.models import Order

WEEK = timedelta(days=7)


@dataclass(frozen=True)
class ReferralResult:
    """The outcome of recording a referral."""

    referral_id: int
    status: str  # pending | rewarded | blocked
    reason: str | None


def _program(session: Session, store_id: int) -> tuple[int, Program]:
    from patronage.loyalty.service import _program as require

    return require(session, store_id)


def referral_code(
    session: Session, *, store_id: int, customer_id: int, now: datetime | None = None
) -> str:
    """The member's referral code, created (and the member enrolled) on first request."""
    moment = now or utcnow()
    version, program = _program(session, store_id)
    book = open_member(
        session,
        store_id=store_id,
        customer_id=customer_id,
        program=program,
        program_version=version,
        now=moment,
    )
    assert book is not None
    row = repository.get_member(session, store_id, customer_id)
    assert row is not None
    if row["referral_code"]:
        return str(row["referral_code"])

    def assign() -> str:
        code = "R" + random_code_characters(7)
        repository.set_referral_code(session, book.member_id, code)
        return code

    return retry_on_conflict(session, assign, attempts=5)


def _normalise_address(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def record_referral(
    session: Session,
    *,
    store_id: int,
    code: str,
    referred_customer_id: int,
    source: str | None = None,
    device_id: str | None = None,
    address: str | None = None,
    now: datetime | None = None,
) -> ReferralResult:
    """Record that a customer came with a referral code; block it, saying why, when it looks
    like fraud: the referrer themselves, the same email, phone, address or device as the referrer,
    a customer who had already ordered, or too many referrals from one source in a week.

    A customer is referred at most once: recording again returns the first outcome.
    """
    moment = now or utcnow()
    _program(session, store_id)
    referrer = repository.member_by_referral_code(session, store_id, code.strip().upper())
    if referrer is None:
        raise NotFoundError(f"no member has referral code {code!r}")
    if not repository.customer_exists(session, store_id, referred_customer_id):
        raise NotFoundError(f"customer {referred_customer_id} does not exist in this store")
    existing = repository.find_referral(session, store_id, referred_customer_id)
    if existing is not None:
        return ReferralResult(existing["id"], existing["status"], existing["reason"])
    reason = _fraud_reason(
        session,
        store_id=store_id,
        referrer_customer_id=referrer["customer_id"],
        referred_customer_id=referred_customer_id,
        source=source,
        device_id=device_id,
        address=address,
        now=moment,
    )
    status = "blocked" if reason else "pending"
    referral_id = repository.insert_referral(
        session,
        {
            "store_id": store_id,
            "referrer_member_id": referrer["id"],
            "referred_customer_id": referred_customer_id,
            "code": referrer["referral_code"],
            "status": status,
            "reason": reason,
            "source": source,
            "device_id": device_id,
            "created_at": moment,
            "rewarded_at": None,
            "order_id": None,
        },
    )
    if reason:
        repository.add_notices(
            session,
            [
                {
                    "store_id": store_id,
                    "member_id": referrer["id"],
                    "kind": "referral_blocked",
                    "dedupe_key": f"referral-blocked:{referral_id}",
                    "payload": {
                        "customer_id": referrer["customer_id"],
                        "referred_customer_id": referred_customer_id,
                        "reason": reason,
                    },
                    "created_at": moment,
                }
            ],
        )
    return ReferralResult(referral_id, status, reason)


def _fraud_reason(
    session: Session,
    *,
    store_id: int,
    referrer_customer_id: int,
    referred_customer_id: int,
    source: str | None,
    device_id: str | None,
    address: str | None,
    now: datetime,
) -> str | None:
    if referrer_customer_id == referred_customer_id:
        return "self-referral: the referrer and the friend are the same customer"
    referrer = repository.customer_fingerprint(session, store_id, referrer_customer_id)
    friend = repository.customer_fingerprint(session, store_id, referred_customer_id)
    if address:
        friend["addresses"] = friend.get("addresses", set()) | {address}
    if device_id:
        friend["devices"] = friend.get("devices", set()) | {device_id}
    for field, label in (
        ("emails", "email"),
        ("phones", "phone"),
        ("devices", "device"),
    ):
        if referrer.get(field, set()) & friend.get(field, set()):
            return f"self-referral: same {label} as the referrer"
    referrer_addresses = {_normalise_address(a) for a in referrer.get("addresses", set())}
    friend_addresses = {_normalise_address(a) for a in friend.get("addresses", set())}
    if referrer_addresses & friend_addresses - {""}:
        return "self-referral: same address as the referrer"
    earlier_orders = session.scalar(
        select(func.count()).where(
            Order.store_id == store_id,
            Order.customer_id == referred_customer_id,
            Order.placed_at < now,
        )
    )
    if earlier_orders:
        return "not a new customer: the friend had already ordered before the referral"
    limit = _limit(session, store_id)
    if (
        source
        and repository.referrals_from_source(session, store_id, source=source, since=now - WEEK)
        >= limit
    ):
        return f"too many referrals from source {source} this week (limit {limit})"
    if (
        device_id
        and repository.referrals_from_device(
            session, store_id, device_id=device_id, since=now - WEEK
        )
        >= limit
    ):
        return f"too many referrals from one device this week (limit {limit})"
    return None


def _limit(session: Session, store_id: int) -> int:
    found = load_program(session, store_id)
    return found[1].referrals.max_per_source_per_week if found else 3


def reward_due_referrals(session: Session, store_id: int, now: datetime) -> int:
    """Reward the referrers whose friend's first order has passed the return window."""
    found = load_program(session, store_id)
    if found is None:
        return 0
    version, program = found
    due = repository.pending_referrals_due(
        session, store_id, window_days=program.returns.window_days, now=now
    )
    rewarded = 0
    for referral in due:
        member_ids = [referral["referrer_member_id"]]
        friend_points = program.referrals.referred_points
        if friend_points:
            repository.ensure_members(
                session,
                [_friend_row(store_id, referral["referred_customer_id"], program, now)],
            )
            friend = repository.member_ids_by_customer(
                session, store_id, [referral["referred_customer_id"]]
            )
            member_ids += list(friend.values())
        books = open_members(
            session,
            store_id=store_id,
            member_ids=member_ids,
            program=program,
            program_version=version,
            now=now,
        )
        for book in books:
            is_referrer = book.member_id == referral["referrer_member_id"]
            points = program.referrals.referrer_points if is_referrer else friend_points
            if points <= 0:
                continue
            role = "referrer" if is_referrer else "friend"
            book.credit(
                kind="referral",
                points=points,
                key=f"referral:{referral['id']}:{role}",
                pending=False,
                reason="referral reward",
                details={"referral_id": referral["id"], "role": role},
            )
            book.notices.append(
                book.notice(
                    "referral_rewarded",
                    dedupe_key=f"referral-rewarded:{referral['id']}:{role}",
                    payload={"points": points, "referral_id": referral["id"]},
                )
            )
            book.save()
        repository.update_referral(
            session,
            referral["id"],
            status="rewarded",
            rewarded_at=now,
            order_id=referral["first_order_id"],
        )
        rewarded += 1
    return rewarded


def _friend_row(store_id: int, customer_id: int, program: Program, now: datetime) -> dict:
    from patronage.loyalty.ledger import new_member_row

    return new_member_row(store_id, customer_id, program, now)


def referral_view(session: Session, *, store_id: int, referral_id: int) -> ReferralOut:
    """One referral with its referrer's customer id."""
    row = session.execute(
        select(Referral, LoyaltyMember.customer_id)
        .join(LoyaltyMember, LoyaltyMember.id == Referral.referrer_member_id)
        .where(Referral.store_id == store_id, Referral.id == referral_id)
    ).first()
    if row is None:
        raise NotFoundError(f"referral {referral_id} does not exist in this store")
    return _referral_out(row[0], row[1])


def _referral_out(referral: Referral, referrer_customer_id: int) -> ReferralOut:
    return ReferralOut(
        referral_id=referral.id,
        referrer_customer_id=referrer_customer_id,
        referred_customer_id=referral.referred_customer_id,
        code=referral.code,
        status=referral.status,
        reason=referral.reason,
        created_at=referral.created_at,
        rewarded_at=referral.rewarded_at,
        order_id=referral.order_id,
    )


def member_referrals(
    session: Session, *, store_id: int, customer_id: int, now: datetime | None = None
) -> MemberReferralsOut:
    """The member's referral code (created on first request) and the referrals made with it."""
    if not repository.customer_exists(session, store_id, customer_id):
        raise NotFoundError(f"customer {customer_id} does not exist in this store")
    code = referral_code(session, store_id=store_id, customer_id=customer_id, now=now)
    _, program = _program(session, store_id)
    member_id = session.scalar(
        select(LoyaltyMember.id).where(
            LoyaltyMember.store_id == store_id, LoyaltyMember.customer_id == customer_id
        )
    )
    referrals = list(
        session.scalars(
            select(Referral)
            .where(Referral.store_id == store_id, Referral.referrer_member_id == member_id)
            .order_by(Referral.id.desc())
        )
    )
    counts = {"pending": 0, "rewarded": 0, "blocked": 0}
    for referral in referrals:
        counts[referral.status] = counts.get(referral.status, 0) + 1
    return MemberReferralsOut(
        customer_id=customer_id,
        code=code,
        referrer_points=program.referrals.referrer_points,
        counts=counts,
        referrals=[_referral_out(referral, customer_id) for referral in referrals],
    )
