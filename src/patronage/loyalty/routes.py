"""Members API: balances, tier and progress, the ledger, earning and redeeming points."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from sqlalchemy.orm import Session

from patronage.api.deps import DbSession, SecretStoreId
from patronage.loyalty import service
from patronage.loyalty.errors import MissingIdempotencyKeyError
from patronage.loyalty.notices import list_notices
from patronage.loyalty.referrals import member_referrals
from patronage.loyalty.schemas import (
    ActionIn,
    LedgerOut,
    MemberOut,
    MemberReferralsOut,
    MutationOut,
    NoticesOut,
    PointsIn,
    RedemptionIn,
)

router = APIRouter(prefix="/v1/members", tags=["members"])

_READ_PROBLEMS: dict[int | str, dict[str, object]] = {
    401: {"description": "Missing or invalid secret key"},
    404: {"description": "No such customer in this store, or no membership program"},
}
_WRITE_PROBLEMS: dict[int | str, dict[str, object]] = {
    **_READ_PROBLEMS,
    400: {"description": "Missing Idempotency-Key header"},
    409: {
        "description": "Insufficient points, a bonus already awarded, or an idempotency key "
        "reused with a different request"
    },
    422: {"description": "Invalid request"},
}

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Unique per mutation; a replay returns the first result.",
        max_length=200,
    ),
]


def require_key(key: str | None) -> str:
    """The idempotency key of a mutation, or MissingIdempotencyKeyError (400)."""
    if key is None or not key.strip():
        raise MissingIdempotencyKeyError(
            "send an `Idempotency-Key` header (unique per mutation) with every change of points"
        )
    return key.strip()


def mark_replayed(response: Response, replayed: bool) -> None:
    """Tell the client a mutation's answer is the stored one of an earlier request."""
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"


@contextmanager
def unit_of_work(session: Session) -> Iterator[None]:
    """Commit (or roll back) in the thread that took the member's lock, before returning.

    The request's session dependency would end the transaction too, but in a later pass through
    the thread pool; when many requests wait on one member's lock they can occupy every pool
    thread, and the holder's commit or rollback would wait for a thread that never frees up.
    Ending the transaction here releases the lock as soon as the work is done or has failed.
    """
    try:
        yield
        session.commit()
    except BaseException:
        session.rollback()
        raise


@router.get("/{customer_id}", response_model=MemberOut, responses=_READ_PROBLEMS)
def read_member(customer_id: int, store_id: SecretStoreId, session: DbSession) -> MemberOut:
    """Available and pending points, points expiring soon, tier, progress and standing."""
    return service.member_summary(session, store_id=store_id, customer_id=customer_id)


@router.get("/{customer_id}/ledger", response_model=LedgerOut, responses=_READ_PROBLEMS)
def read_ledger(
    customer_id: int,
    store_id: SecretStoreId,
    session: DbSession,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before_id: Annotated[int | None, Query(ge=1)] = None,
) -> LedgerOut:
    """The member's ledger entries, newest first; page with `before_id`."""
    return service.member_ledger(
        session, store_id=store_id, customer_id=customer_id, limit=limit, before_id=before_id
    )


@router.post(
    "/{customer_id}/points",
    response_model=MutationOut,
    status_code=201,
    responses=_WRITE_PROBLEMS,
)
def change_points(
    customer_id: int,
    points_in: PointsIn,
    store_id: SecretStoreId,
    session: DbSession,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> MutationOut:
    """Earn points, adjust them with a reason, or award a bonus action of the program."""
    with unit_of_work(session):
        result, replayed = service.change_points(
            session,
            store_id=store_id,
            customer_id=customer_id,
            points_in=points_in,
            idempotency_key=require_key(idempotency_key),
        )
    mark_replayed(response, replayed)
    return result


@router.post(
    "/{customer_id}/redemptions",
    response_model=MutationOut,
    status_code=201,
    responses=_WRITE_PROBLEMS,
)
def redeem(
    customer_id: int,
    redemption_in: RedemptionIn,
    store_id: SecretStoreId,
    session: DbSession,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> MutationOut:
    """Redeem a catalog reward or points + cash; the response carries the single-use coupon."""
    with unit_of_work(session):
        result, replayed = service.redeem(
            session,
            store_id=store_id,
            customer_id=customer_id,
            redemption_in=redemption_in,
            idempotency_key=require_key(idempotency_key),
        )
    mark_replayed(response, replayed)
    return result


@router.post(
    "/{customer_id}/actions",
    response_model=MutationOut,
    status_code=201,
    responses=_WRITE_PROBLEMS,
)
def award_action(
    customer_id: int,
    action_in: ActionIn,
    store_id: SecretStoreId,
    session: DbSession,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> MutationOut:
    """Award a bonus action of the program (sign-up, a review by type, birthday …).

    Once-per rules refuse a second award in the same period (409); the daily and monthly caps
    cut the bonus (`capped: true`, possibly to 0 points).
    """
    points_in = PointsIn(
        kind="action", action=action_in.action, variant=action_in.variant, reason=action_in.reason
    )
    with unit_of_work(session):
        result, replayed = service.change_points(
            session,
            store_id=store_id,
            customer_id=customer_id,
            points_in=points_in,
            idempotency_key=require_key(idempotency_key),
        )
    mark_replayed(response, replayed)
    return result


@router.get("/{customer_id}/referral", response_model=MemberReferralsOut, responses=_READ_PROBLEMS)
def read_referral(
    customer_id: int, store_id: SecretStoreId, session: DbSession
) -> MemberReferralsOut:
    """The member's referral code (created on first request) and the referrals made with it."""
    with unit_of_work(session):
        return member_referrals(session, store_id=store_id, customer_id=customer_id)


@router.get("/{customer_id}/notices", response_model=NoticesOut, responses=_READ_PROBLEMS)
def read_member_notices(
    customer_id: int,
    store_id: SecretStoreId,
    session: DbSession,
    pending: Annotated[bool, Query(description="Only notices not yet processed")] = False,
    after_id: Annotated[int | None, Query(ge=0)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> NoticesOut:
    """The member's notices (expiry reminders, tier changes, referrals …), oldest first."""
    return list_notices(
        session,
        store_id=store_id,
        customer_id=customer_id,
        pending_only=pending,
        after_id=after_id,
        limit=limit,
    )
