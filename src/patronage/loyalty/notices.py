"""The notice outbox as its consumers see it: pages of notices and marking them processed.

Notices are written by the ledger, the jobs and the tiers in the same transaction as their cause
(`loyalty_notices`); flows and messaging read the pending ones in id order and mark them
processed once handled.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from patronage.errors import NotFoundError
from patronage.loyalty import repository
from patronage.loyalty.models import LoyaltyMember, LoyaltyNotice
from patronage.loyalty.schemas import NoticeOut, NoticesOut


def list_notices(
    session: Session,
    *,
    store_id: int,
    customer_id: int | None = None,
    pending_only: bool = True,
    kind: str | None = None,
    after_id: int | None = None,
    limit: int = 100,
) -> NoticesOut:
    """A page of the store's (or one member's) notices, oldest first."""
    query = (
        select(LoyaltyNotice, LoyaltyMember.customer_id)
        .join(LoyaltyMember, LoyaltyMember.id == LoyaltyNotice.member_id)
        .where(LoyaltyNotice.store_id == store_id)
        .order_by(LoyaltyNotice.id)
        .limit(limit + 1)
    )
    if customer_id is not None:
        if not repository.customer_exists(session, store_id, customer_id):
            raise NotFoundError(f"customer {customer_id} does not exist in this store")
        query = query.where(LoyaltyMember.customer_id == customer_id)
    if pending_only:
        query = query.where(LoyaltyNotice.processed_at.is_(None))
    if kind is not None:
        query = query.where(LoyaltyNotice.kind == kind)
    if after_id is not None:
        query = query.where(LoyaltyNotice.id > after_id)
    rows = session.execute(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    notices = [
        NoticeOut(
            id=notice.id,
            customer_id=customer,
            kind=notice.kind,
            payload=notice.payload or {},
            created_at=notice.created_at,
            processed_at=notice.processed_at,
        )
        for notice, customer in rows
    ]
    return NoticesOut(notices=notices, next_after_id=notices[-1].id if more and notices else None)


def mark_processed(session: Session, *, store_id: int, ids: Sequence[int], now: datetime) -> int:
    """Mark the store's notices among `ids` processed; return how many were pending."""
    result = session.execute(
        update(LoyaltyNotice)
        .where(
            LoyaltyNotice.store_id == store_id,
            LoyaltyNotice.id.in_(sorted(set(ids))),
            LoyaltyNotice.processed_at.is_(None),
        )
        .values(processed_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
