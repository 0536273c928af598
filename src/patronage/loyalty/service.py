"""Member operations the doors call: read a member, earn, adjust, award actions, redeem.

Every mutation takes an idempotency key and runs through `ledger.mutate_member`, which locks the
member row for the whole of it and reads the program and the key in the same statement (see
`ledger`). Services never commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from patronage.errors import ConflictError, NotFoundError, ValidationFailedError
from patronage.kit.clock import utcnow
from patronage.loyalty import repository
from patronage.loyalty.errors import (
    IdempotencyKeyReusedError,
    InsufficientPointsError,
)
from patronage.loyalty.ledger import (
    MemberBook,
    Opened,
    mutate_member,
    new_member_row,
    request_hash,
    require_program,
    run_atomically,
)
from patronage.loyalty.program import Program
from patronage.loyalty.rewards import issue_coupon, quote_points_for_cash
from patronage.loyalty.schemas import (
    CouponOut,
    ExpiringOut,
    LedgerEntryOut,
    LedgerOut,
    MemberOut,
    MutationOut,
    PointsIn,
    ProgressOut,
    RedemptionIn,
    StandingOut,
    TierOut,
)
from patronage.loyalty.tiers import Metrics, progress, standing_percent
from patronage.stores.models import Store

EXPIRING_SOON_DAYS = 30


def _program(session: Session, store_id: int) -> tuple[int, Program]:
    """The store's program in force (see `ledger.require_program`)."""
    return require_program(session, store_id)


def _require_customer(session: Session, store_id: int, customer_id: int) -> None:
    if not repository.customer_exists(session, store_id, customer_id):
        raise NotFoundError(f"customer {customer_id} does not exist in this store")


def _result(
    book: MemberBook, *, kind: str, entry_id: int | None, points: int, **extra: Any
) -> dict:
    return MutationOut(
        entry_id=entry_id,
        customer_id=book.customer_id,
        kind=kind,
        points=points,
        available=book.available,
        pending=book.pending,
        debt=book.debt,
        **extra,
    ).model_dump(mode="json")


def change_points(
    session: Session,
    *,
    store_id: int,
    customer_id: int,
    points_in: PointsIn,
    idempotency_key: str,
    now: datetime | None = None,
) -> tuple[MutationOut, bool]:
    """Earn, adjust or award an action; return the result and whether it was a replay."""
    moment = now or utcnow()
    request = {"operation": "points", "customer_id": customer_id, **points_in.model_dump()}

    def work(opened: Opened) -> dict[str, Any]:
        book = opened.book
        assert book is not None
        key = f"req:{idempotency_key}"
        if points_in.kind == "action":
            result = _award_action(session, book, opened, points_in, key)
        else:
            assert points_in.points is not None
            if points_in.points > 0:
                kind = "earn" if points_in.kind == "earn" else "adjust_credit"
                posted = book.credit(
                    kind=kind,
                    points=points_in.points,
                    key=key,
                    pending=False,
                    reason=points_in.reason,
                )
            else:
                posted = book.debit(
                    kind="adjust_debit",
                    points=-points_in.points,
                    key=key,
                    shortfall_policy="refuse",
                    reason=points_in.reason,
                )
            book.save()
            result = _result(
                book, kind=points_in.kind, entry_id=posted.entry_id, points=points_in.points
            )
        return result

    response, replayed = mutate_member(
        session,
        store_id=store_id,
        customer_id=customer_id,
        key=idempotency_key,
        request=request,
        work=work,
        now=moment,
    )
    return MutationOut.model_validate(response), replayed


def _period_key(once_per: str | None, local: date) -> str | None:
    if once_per is None:
        return None
    return {
        "ever": "ever",
        "year": f"{local:%Y}",
        "month": f"{local:%Y-%m}",
        "day": f"{local:%Y-%m-%d}",
    }[once_per]


def _local_midnight(day: date, timezone: str) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(timezone)).astimezone(UTC)


def _award_action(
    session: Session, book: MemberBook, opened: Opened, points_in: PointsIn, key: str
) -> dict[str, Any]:
    program, timezone = opened.program, opened.timezone
    name = points_in.action or ""
    rule = program.actions.get(name)
    if rule is None:
        known = ", ".join(sorted(program.actions)) or "none"
        raise ValidationFailedError(f"no bonus action {name!r} in the program (known: {known})")
    points = rule.points_for(points_in.variant)
    local = book.now.astimezone(ZoneInfo(timezone)).date()
    period = _period_key(rule.once_per, local)
    entry_key = key
    if period is not None:
        entry_key = f"action:{name}:{book.member_id}:{period}"
        if repository.entry_key_exists(session, book.store_id, entry_key):
            raise ConflictError(
                f"the {name} bonus was already awarded"
                + ("" if period == "ever" else f" for {period}")
            )
    allowed = points
    caps = program.caps
    if caps.daily is not None:
        today = repository.credited_since(
            session, book.member_id, ["bonus"], _local_midnight(local, timezone)
        )
        allowed = min(allowed, max(caps.daily - today, 0))
    if caps.monthly is not None:
        month = repository.credited_since(
            session, book.member_id, ["bonus"], _local_midnight(local.replace(day=1), timezone)
        )
        allowed = min(allowed, max(caps.monthly - month, 0))
    capped = allowed < points
    entry_id = None
    if allowed > 0:
        posted = book.credit(
            kind="bonus",
            points=allowed,
            key=entry_key,
            pending=False,
            reason=points_in.reason
            or f"{name}{f' ({points_in.variant})' if points_in.variant else ''}",
            details={"action": name, "variant": points_in.variant, "capped": capped},
        )
        entry_id = posted.entry_id
    book.save()
    return _result(
        book,
        kind="action",
        entry_id=entry_id,
        points=allowed,
        capped=capped,
        note=f"capped from {points} by the program's limits" if capped else None,
        details={"action": name, "variant": points_in.variant},
    )


def _store_currency(session: Session, store_id: int) -> str:
    store = session.get(Store, store_id)
    return store.base_currency if store else "USD"


def redeem(
    session: Session,
    *,
    store_id: int,
    customer_id: int,
    redemption_in: RedemptionIn,
    idempotency_key: str,
    now: datetime | None = None,
) -> tuple[MutationOut, bool]:
    """Spend points on a reward or on part of an order; return the coupon and the balances.

    Raises InsufficientPointsError (409) when the member cannot pay; under concurrency exactly
    the redemptions the balance covers succeed (the member row is locked while deciding).
    """
    moment = now or utcnow()
    request = {
        "operation": "redeem",
        "customer_id": customer_id,
        **redemption_in.model_dump(mode="json"),
    }

    def work(opened: Opened) -> dict[str, Any]:
        book, program = opened.book, opened.program
        if book is None:
            needed = (
                program.reward(redemption_in.reward).cost_points
                if redemption_in.reward
                else program.points_for_cash.min_points
            )
            raise InsufficientPointsError(
                f"insufficient points: 0 available, {needed} needed", available=0, needed=needed
            )
        key = f"req:{idempotency_key}"
        if redemption_in.reward is not None:
            return _redeem_reward(session, book, opened, redemption_in.reward, key)
        return _redeem_for_cash(session, book, opened, redemption_in, key)

    response, replayed = mutate_member(
        session,
        store_id=store_id,
        customer_id=customer_id,
        key=idempotency_key,
        request=request,
        work=work,
        now=moment,
        create=False,
    )
    return MutationOut.model_validate(response), replayed


def _redeem_reward(
    session: Session, book: MemberBook, opened: Opened, code: str, key: str
) -> dict[str, Any]:
    reward = opened.program.reward(code)
    posted = book.debit(
        kind="redeem",
        points=reward.cost_points,
        key=key,
        shortfall_policy="refuse",
        reason=f"reward {reward.code}",
        details={"reward": reward.code},
    )
    coupon = issue_coupon(
        session,
        store_id=book.store_id,
        member_id=book.member_id,
        entry_id=posted.entry_id,
        reward=reward.code,
        kind=reward.kind,
        value=reward.value,
        currency=opened.currency if reward.value is not None else None,
        valid_days=reward.valid_days,
        now=book.now,
    )
    book.save()
    return _result(
        book,
        kind="redeem",
        entry_id=posted.entry_id,
        points=-reward.cost_points,
        coupon=CouponOut.model_validate(coupon),
        details={"reward": reward.code, "lots": posted.lots},
    )


def _redeem_for_cash(
    session: Session, book: MemberBook, opened: Opened, redemption_in: RedemptionIn, key: str
) -> dict[str, Any]:
    assert redemption_in.order_total is not None
    program, base_currency = opened.program, opened.currency
    currency = (redemption_in.currency or base_currency).upper()
    rate = Decimal(1)
    if currency != base_currency:
        from patronage.orders.fx import load_rate_book

        rate = load_rate_book(session, book.store_id, base_currency).rate(currency, book.now.date())
    book.settle()
    quote = quote_points_for_cash(
        program.points_for_cash,
        order_total=redemption_in.order_total,
        currency=currency,
        rate_to_base=rate,
        available=book.available,
        requested=redemption_in.points,
    )
    posted = book.debit(
        kind="redeem",
        points=quote.points,
        key=key,
        shortfall_policy="refuse",
        reason=f"points + cash: {quote.value} {currency} of {redemption_in.order_total}",
        details={"points_for_cash": str(quote.value), "currency": currency},
    )
    coupon = issue_coupon(
        session,
        store_id=book.store_id,
        member_id=book.member_id,
        entry_id=posted.entry_id,
        reward="points-for-cash",
        kind="points_for_cash",
        value=quote.value,
        currency=currency,
        valid_days=program.points_for_cash.valid_days,
        now=book.now,
    )
    book.save()
    return _result(
        book,
        kind="redeem",
        entry_id=posted.entry_id,
        points=-quote.points,
        coupon=CouponOut.model_validate(coupon),
        note=(
            f"capped at {quote.cap} {currency} "
            f"({program.points_for_cash.max_share:.0%} of the order)"
            if redemption_in.points is not None and quote.points < redemption_in.points
            else None
        ),
        details={"value": str(quote.value), "currency": currency, "cap": str(quote.cap)},
    )


def member_summary(
    session: Session, *, store_id: int, customer_id: int, now: datetime | None = None
) -> MemberOut:
    """A member's balances, what lapses soon, tier, progress to the next one and standing."""
    moment = now or utcnow()
    version, program = require_program(session, store_id)
    _require_customer(session, store_id, customer_id)
    row = repository.get_member(session, store_id, customer_id)
    currency = _store_currency(session, store_id)
    if row is None:
        metrics = Metrics()
        tier_name = program.tiers[0].name
        available = pending = debt = 0
        expiring: list[ExpiringOut] = []
        below, total = repository.standing(session, store_id, Decimal(0))
    else:
        metrics = Metrics(row["rolling_spend"], row["rolling_orders"])
        tier_name = row["tier"]
        lapsed = repository.lapsed_unprocessed(session, row["id"], moment)
        available = row["available_points"] - lapsed
        pending, debt = row["pending_points"], row["debt_points"]
        expiring = [
            ExpiringOut(points=points, expires_at=expires_at)
            for expires_at, points in repository.expiring_points(
                session,
                row["id"],
                after=moment,
                until=moment + timedelta(days=EXPIRING_SOON_DAYS),
            )
        ]
        below, total = repository.standing(session, store_id, metrics.spend)
    tier = program.tier_named(tier_name)
    percent = standing_percent(below, total + (0 if row is not None else 1))
    return MemberOut(
        customer_id=customer_id,
        member_id=row["id"] if row else None,
        enrolled=row is not None,
        available=available,
        pending=pending,
        debt=debt,
        expiring_soon=expiring,
        tier=TierOut(
            name=tier.name,
            since=row["tier_since_at"] if row else None,
            benefits=tier.benefits.model_dump(mode="json"),
            downgrade_due_at=row["downgrade_due_at"] if row else None,
        ),
        progress=ProgressOut(**progress(program, tier.name, metrics, currency)),
        standing=StandingOut(
            ahead_of_percent=percent, text=f"You are ahead of {percent}% of members."
        ),
        rolling_spend=metrics.spend,
        rolling_orders=metrics.orders,
        heritage=bool(row and row["heritage_since_at"]),
        referral_code=row["referral_code"] if row else None,
        program_version=version,
    )


def member_ledger(
    session: Session,
    *,
    store_id: int,
    customer_id: int,
    limit: int = 50,
    before_id: int | None = None,
) -> LedgerOut:
    """A page of a member's entries, newest first."""
    _require_customer(session, store_id, customer_id)
    row = repository.get_member(session, store_id, customer_id)
    if row is None:
        return LedgerOut(customer_id=customer_id, entries=[], next_before_id=None)
    page = repository.ledger_page(
        session, store_id, row["id"], limit=limit + 1, before_id=before_id
    )
    more = len(page) > limit
    page = page[:limit]
    return LedgerOut(
        customer_id=customer_id,
        entries=[LedgerEntryOut.model_validate(entry) for entry in page],
        next_before_id=page[-1]["id"] if more and page else None,
    )


def merge_members(
    session: Session,
    *,
    store_id: int,
    surviving_customer_id: int,
    merged_customer_id: int,
    now: datetime | None = None,
) -> int:
    """Fold the membership of a merged customer into the survivor's; return the points moved.

    Call it when two customers are merged, before their rows are re-pointed. With one member, the
    membership simply follows the survivor. With two, every open lot of the merged member moves
    through the ledger (a `transfer_out` entry there, a `transfer_in` credit here that keeps the
    lot's pending state, activation and expiry), any debt moves with it, and the orders, coupons
    and referrals follow; the merged member stays behind with empty balances and its history.
    """
    from patronage.loyalty.orders import open_members

    moment = now or utcnow()
    ids = repository.member_ids_by_customer(
        session, store_id, [surviving_customer_id, merged_customer_id]
    )
    merged_id = ids.get(merged_customer_id)
    surviving_id = ids.get(surviving_customer_id)
    if merged_id is None or merged_id == surviving_id:
        return 0
    if surviving_id is None:
        repository.repoint_member(session, merged_id, surviving_customer_id)
        return 0
    version, program = require_program(session, store_id)
    books = {
        book.member_id: book
        for book in open_members(
            session,
            store_id=store_id,
            member_ids=[merged_id, surviving_id],
            program=program,
            program_version=version,
            now=moment,
        )
    }
    source, target = books[merged_id], books[surviving_id]
    moved = 0
    for lot in sorted(source.lots(), key=lambda lot: lot.id):
        points = lot.remaining
        if points <= 0:
            continue
        key = f"merge:{merged_id}:lot:{lot.id}"
        source.take_lot(lot, kind="transfer_out", key=f"{key}:out", details={"to": surviving_id})
        target.credit(
            kind="transfer_in",
            points=points,
            key=f"{key}:in",
            pending=not lot.active,
            activates_at=lot.activates_at,
            order_id=lot.order_id,
            reason=f"merged from member {merged_id}",
            details={"from": merged_id, "lot_id": lot.id},
            activated_at=lot.activated_at,
            expires_at=lot.expires_at,
        )
        moved += points
    if source.debt > 0:
        debt = source.debt
        source.credit(
            kind="transfer_in",
            points=debt,
            key=f"merge:{merged_id}:debt:in",
            pending=False,
            reason=f"debt moved to member {surviving_id}",
        )
        target.debit(
            kind="transfer_out",
            points=debt,
            key=f"merge:{merged_id}:debt:out",
            shortfall_policy="negative_balance",
            reason=f"debt moved from member {merged_id}",
        )
    source.save()
    target.save()
    repository.move_member_rows(session, store_id, from_id=merged_id, to_id=surviving_id)
    repository.add_notices(
        session,
        [
            target.notice(
                "members_merged",
                dedupe_key=f"merge:{merged_id}:{surviving_id}",
                payload={"merged_member_id": merged_id, "points_moved": moved},
            )
        ],
    )
    return moved


@dataclass(frozen=True)
class PointsRequest:
    """One earn or adjust of a batch."""

    customer_id: int
    points_in: PointsIn
    idempotency_key: str


def change_points_many(
    session: Session,
    *,
    store_id: int,
    requests: Sequence[PointsRequest],
    now: datetime | None = None,
) -> list[tuple[MutationOut, bool]]:
    """Earn or adjust points for many members in one transaction; all or nothing.

    The same guarantees as `change_points`, paid for once per batch instead of once per
    mutation: the program and every key are read in one query each, all members are locked in
    one statement (member id order), keys are recorded in one insert. A replayed key returns its
    first result; a key reused with another request, an overdraft or an unknown customer fails
    the whole batch (it runs atomically, see `ledger.run_atomically`: nothing is written). Bonus
    actions are not batched (use `change_points`).
    """
    moment = now or utcnow()
    if not requests:
        return []
    if any(request.points_in.kind == "action" for request in requests):
        raise ValidationFailedError("bonus actions cannot be batched; send them one by one")

    def attempt() -> list[tuple[MutationOut, bool]]:
        version, program = require_program(session, store_id)
        fingerprints = [
            request_hash(
                {
                    "operation": "points",
                    "customer_id": request.customer_id,
                    **request.points_in.model_dump(),
                }
            )
            for request in requests
        ]
        stored = repository.find_idempotency_many(
            session, store_id, [request.idempotency_key for request in requests]
        )
        results: list[tuple[MutationOut, bool] | None] = [None] * len(requests)
        fresh: dict[str, int] = {}
        for index, (request, fingerprint) in enumerate(zip(requests, fingerprints, strict=True)):
            key = request.idempotency_key
            if not key or len(key) > 200:
                raise IdempotencyKeyReusedError("an idempotency key must be 1 to 200 characters")
            held = stored.get(key)
            if held is None and key in fresh:
                held = (fingerprints[fresh[key]], {})
            if held is not None:
                if held[0] != fingerprint:
                    raise IdempotencyKeyReusedError(
                        f"idempotency key {key!r} was already used for a different request"
                    )
                continue
            fresh[key] = index
        customers = {requests[index].customer_id for index in fresh.values()}
        missing = customers - repository.existing_customers(session, store_id, customers)
        if missing:
            raise NotFoundError(f"customer {min(missing)} does not exist in this store")
        repository.ensure_members(
            session, [new_member_row(store_id, customer, program, moment) for customer in customers]
        )
        books = {
            row["customer_id"]: MemberBook(
                session,
                store_id=store_id,
                member=row,
                program=program,
                program_version=version,
                now=moment,
            )
            for row in repository.lock_members_by_customer(session, store_id, sorted(customers))
        }
        key_rows: list[dict[str, Any]] = []
        for key, index in fresh.items():
            request = requests[index]
            book = books[request.customer_id]
            points = request.points_in.points or 0
            if points > 0:
                posted = book.credit(
                    kind="earn" if request.points_in.kind == "earn" else "adjust_credit",
                    points=points,
                    key=f"req:{key}",
                    pending=False,
                    reason=request.points_in.reason,
                )
            else:
                posted = book.debit(
                    kind="adjust_debit",
                    points=-points,
                    key=f"req:{key}",
                    shortfall_policy="refuse",
                    reason=request.points_in.reason,
                )
            response = _result(
                book, kind=request.points_in.kind, entry_id=posted.entry_id, points=points
            )
            results[index] = (MutationOut.model_validate(response), False)
            key_rows.append(
                {
                    "store_id": store_id,
                    "key": key,
                    "request_hash": fingerprints[index],
                    "response": response,
                    "created_at": moment,
                }
            )
        for book in books.values():
            book.save()
        repository.insert_idempotency_many(session, key_rows)
        for index, request in enumerate(requests):
            if results[index] is None:
                held = stored.get(request.idempotency_key)
                if held is not None:
                    results[index] = (MutationOut.model_validate(held[1]), True)
                else:
                    first = results[fresh[request.idempotency_key]]
                    assert first is not None
                    results[index] = (first[0], True)
        return [result for result in results if result is not None]

    # A concurrent batch may record one of the keys first; the retry then finds it stored.
    return run_atomically(session, attempt)
