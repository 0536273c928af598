"""The points ledger: append-only entries, lots with what is left of each credit, consumptions.

Guarantees (proved by `verify`):

- A member's `available_points` and `pending_points` are the sums of the `available_delta` and
  `pending_delta` of their entries; nothing else ever changes them.
- Every credit is one lot. A lot's `remaining` is its amount minus what debits consumed from it,
  never below zero; pending lots (not yet activated) add up to the pending balance, active lots
  to the available balance plus any debt.
- Debits consume active lots soonest-expiring first and record which lots they took.
- Redemptions and debit adjustments never overdraw: the member row is locked (`SELECT … FOR
  UPDATE` on PostgreSQL; on SQLite the transaction began with `BEGIN IMMEDIATE` and holds the only
  write lock) before the balance is read, and the write happens in the same transaction. The
  balance update is also conditional on the values read, so a write without the lock would fail
  instead of losing an update.
- Only a reversal (refund, return, cancellation) may leave the member in debt, and only when the
  program's `spent_points_policy` is `negative_balance`; debt is recovered from the next points
  that become available. Under `flag` the shortfall is recorded as a `refund_review` notice.
- Every entry carries a unique idempotency key per store; requests also record their own key with
  a hash of the request and their result (`idempotent`), so a replay returns the first result.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar

from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from patronage.errors import NotFoundError
from patronage.kit.clock import utcnow
from patronage.loyalty import repository
from patronage.loyalty.errors import (
    IdempotencyKeyReusedError,
    InsufficientPointsError,
    ProgramNotConfiguredError,
)
from patronage.loyalty.program import Program, program_from_document

_T = TypeVar("_T")
ShortfallPolicy = Literal["refuse", "negative_balance", "flag"]
_PAGE = 50


@dataclass
class Lot:
    """One credit's points as the ledger holds them in memory while the member is locked."""

    id: int
    source: str
    order_id: int | None
    amount: int
    remaining: int
    activates_at: datetime | None
    activated_at: datetime | None
    expires_at: datetime | None

    @property
    def active(self) -> bool:
        """Whether the points are spendable (activated)."""
        return self.activated_at is not None


@dataclass
class Posted:
    """What one posting did."""

    entry_id: int | None
    points: int
    available_delta: int = 0
    pending_delta: int = 0
    shortfall: int = 0
    lots: list[tuple[int, int]] = field(default_factory=list)  # (lot id, points)


def _lot_sort_key(lot: Lot) -> tuple[bool, datetime | None, int]:
    return (lot.expires_at is None, lot.expires_at, lot.id)


class MemberBook:
    """The ledger of one locked member within one transaction.

    Create it only from `open_member` (which takes the lock); call `save` once at the end, which
    writes the balances under the condition that they are still what was read.
    """

    def __init__(
        self,
        session: Session,
        *,
        store_id: int,
        member: dict[str, Any],
        program: Program,
        program_version: int,
        now: datetime,
        lots_due: bool = True,
        defer_balances: bool = False,
    ) -> None:
        self.session = session
        self.store_id = store_id
        self.member_id: int = member["id"]
        self.customer_id: int = member["customer_id"]
        self.tier: str = member["tier"]
        self.available: int = member["available_points"]
        self.pending: int = member["pending_points"]
        self.debt: int = member["debt_points"]
        self._read = (self.available, self.pending, self.debt)
        self.program = program
        self.program_version = program_version
        self.now = now
        self._known: dict[int, Lot] = {}
        self._lot_changes: dict[int, dict[str, Any]] = {}
        self.notices: list[dict[str, Any]] = []
        # False only when the member was read with no lot due to activate or lapse; any lot this
        # book makes pending or reschedules sets it back, so `settle` never skips real work.
        self._lots_due = lots_due
        self._defer_balances = defer_balances

    # ---- reading -------------------------------------------------------------------------------

    def _load(self, rows: list[dict[str, Any]]) -> list[Lot]:
        """Lots from rows, the same object for the same lot within this book."""
        loaded = []
        for row in rows:
            lot = self._known.get(row["id"])
            if lot is None:
                lot = Lot(
                    id=row["id"],
                    source=row["source"],
                    order_id=row["order_id"],
                    amount=row["amount"],
                    remaining=row["remaining"],
                    activates_at=row["activates_at"],
                    activated_at=row["activated_at"],
                    expires_at=row["expires_at"],
                )
                self._known[lot.id] = lot
            loaded.append(lot)
        return loaded

    def _flush_lots(self) -> None:
        if self._lot_changes:
            repository.update_lots(
                self.session,
                [{"lot_id": lot_id, **values} for lot_id, values in self._lot_changes.items()],
            )
            self._lot_changes = {}

    def lots(self) -> list[Lot]:
        """Every lot of the member with points left."""
        self._flush_lots()
        return self._load(repository.open_lots(self.session, self.member_id))

    def order_lots(self, order_id: int) -> list[Lot]:
        """The member's lots attached to one order, with points left."""
        self._flush_lots()
        return self._load(repository.open_order_lots(self.session, self.member_id, order_id))

    def due_lots(self) -> list[Lot]:
        """Pending lots due to activate and active lots past their expiry."""
        self._flush_lots()
        return self._load(repository.due_lots(self.session, self.member_id, self.now))

    def spendable(self) -> Iterator[Lot]:
        """Active lots with points left, soonest-expiring first, read a page at a time."""
        self._flush_lots()
        offset = 0
        while True:
            page = self._load(
                repository.spendable_lots(self.session, self.member_id, limit=_PAGE, offset=offset)
            )
            yield from page
            if len(page) < _PAGE:
                return
            offset += _PAGE

    # ---- writing -------------------------------------------------------------------------------

    def _entry(self, **fields: Any) -> int:
        """Append an entry (the fields of `_entry_row`); return its id."""
        return repository.insert_entry(self.session, self._entry_row(**fields))

    def _entry_row(
        self,
        *,
        kind: str,
        available_delta: int,
        pending_delta: int,
        key: str,
        reason: str | None = None,
        order_id: int | None = None,
        details: dict[str, Any] | None = None,
        reverses_entry_id: int | None = None,
    ) -> dict[str, Any]:
        """The row of a new entry, whose deltas the balances take at once."""
        self.available += available_delta
        self.pending += pending_delta
        return {
            "store_id": self.store_id,
            "member_id": self.member_id,
            "kind": kind,
            "available_delta": available_delta,
            "pending_delta": pending_delta,
            "occurred_at": self.now,
            "idempotency_key": key,
            "reason": reason,
            "order_id": order_id,
            "reverses_entry_id": reverses_entry_id,
            "program_version": self.program_version,
            "details": details or {},
        }

    def _change_lot(self, lot: Lot, **values: Any) -> None:
        self._lot_changes.setdefault(lot.id, {}).update(values)

    def credit(
        self,
        *,
        kind: str,
        points: int,
        key: str,
        pending: bool,
        activates_at: datetime | None = None,
        order_id: int | None = None,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        activated_at: datetime | None = None,
        expires_at: datetime | None = None,
    ) -> Posted:
        """Add a lot of `points`, pending (until `activates_at`) or spendable now.

        A spendable credit starts its expiry clock now, unless `activated_at` and `expires_at`
        carry over those of a lot moved from another member.
        """
        if points <= 0:
            raise ValueError("a credit needs a positive number of points")
        entry = self._entry_row(
            kind=kind,
            available_delta=0 if pending else points,
            pending_delta=points if pending else 0,
            key=key,
            reason=reason,
            order_id=order_id,
            details=details,
        )
        if pending:
            activated_at = expires_at = None
            self._lots_due = True
        elif activated_at is None:
            activated_at = self.now
            expires_at = self.program.expiry.expires_at(self.now)
        if expires_at is not None and expires_at <= self.now:
            self._lots_due = True
        entry_id, lot_id = repository.insert_credit(
            self.session,
            entry,
            {
                "store_id": self.store_id,
                "member_id": self.member_id,
                "source": kind,
                "order_id": order_id,
                "amount": points,
                "remaining": points,
                "created_at": self.now,
                "activates_at": activates_at if pending else activated_at,
                "activated_at": activated_at,
                "expires_at": expires_at,
            },
        )
        lot = Lot(lot_id, kind, order_id, points, points, activates_at, activated_at, expires_at)
        self._known[lot.id] = lot
        if not pending:
            self._recover_debt(lot, fresh=True)
        return Posted(
            entry_id,
            points,
            available_delta=0 if pending else points,
            pending_delta=points if pending else 0,
        )

    def debit(
        self,
        *,
        kind: str,
        points: int,
        key: str,
        shortfall_policy: ShortfallPolicy,
        reason: str | None = None,
        order_id: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> Posted:
        """Take `points`: from the order's own lots first (reversals), then active lots
        soonest-expiring first; what no lot covers is refused, owed, or flagged by the policy."""
        if points <= 0:
            raise ValueError("a debit needs a positive number of points")
        self.settle()
        if shortfall_policy == "refuse" and self.available < points:
            raise InsufficientPointsError(
                f"insufficient points: {max(self.available, 0)} available, {points} needed",
                available=max(self.available, 0),
                needed=points,
            )
        if order_id is None and shortfall_policy == "refuse":
            return self._spend(kind=kind, points=points, key=key, reason=reason, details=details)
        taken: list[tuple[Lot, int]] = []
        still = points
        for lot in self._debit_candidates(order_id):
            if still == 0:
                break
            take = min(lot.remaining, still)
            if take > 0:
                taken.append((lot, take))
                still -= take
        from_pending = sum(take for lot, take in taken if not lot.active)
        from_active = sum(take for lot, take in taken if lot.active)
        owed = still if shortfall_policy == "negative_balance" else 0
        flagged = still if shortfall_policy == "flag" else 0
        entry_details = dict(details or {})
        if still:
            entry_details["shortfall"] = still
            entry_details["shortfall_policy"] = shortfall_policy
        entry_id: int | None = None
        if from_pending or from_active or owed:
            entry_id = self._entry(
                kind=kind,
                available_delta=-(from_active + owed),
                pending_delta=-from_pending,
                key=key,
                reason=reason,
                order_id=order_id,
                details=entry_details,
            )
            self._consume(entry_id, taken)
        self.debt += owed
        if flagged:
            self.notices.append(
                self.notice(
                    "refund_review",
                    dedupe_key=f"review:{key}",
                    payload={
                        "points_owed": flagged,
                        "reason": reason,
                        "order_id": order_id,
                        "entry_id": entry_id,
                    },
                )
            )
        return Posted(
            entry_id,
            points - flagged,
            available_delta=-(from_active + owed),
            pending_delta=-from_pending,
            shortfall=still,
            lots=[(lot.id, take) for lot, take in taken],
        )

    def _spend(
        self,
        *,
        kind: str,
        points: int,
        key: str,
        reason: str | None,
        details: dict[str, Any] | None,
    ) -> Posted:
        """Debit points the balance covers (checked by the caller) from active lots, soonest-
        expiring first, letting the database pick and consume the lots."""
        self._flush_lots()
        entry = self._entry_row(
            kind=kind, available_delta=-points, pending_delta=0, key=key, reason=reason,
            details=details,
        )  # fmt: skip
        entry_id, taken = repository.insert_spending(self.session, entry, points)
        if sum(take for _, take in taken) != points:
            raise RuntimeError(
                f"member {self.member_id}: active lots do not cover the balance; run verify"
            )
        for lot_id, take in taken:
            known = self._known.get(lot_id)
            if known is not None:
                known.remaining -= take
        return Posted(entry_id, points, available_delta=-points, lots=taken)

    def _debit_candidates(self, order_id: int | None) -> Iterator[Lot]:
        """The order's own lots first (pending ones first), then active lots by expiry."""
        if order_id is not None:
            own = sorted(self.order_lots(order_id), key=lambda lot: (lot.active, lot.id))
            yield from own
        for lot in self.spendable():
            if order_id is None or lot.order_id != order_id:
                yield lot

    def _consume(self, entry_id: int, taken: list[tuple[Lot, int]]) -> None:
        rows = []
        for lot, take in taken:
            lot.remaining -= take
            self._change_lot(lot, remaining=lot.remaining)
            rows.append(
                {
                    "store_id": self.store_id,
                    "member_id": self.member_id,
                    "entry_id": entry_id,
                    "lot_id": lot.id,
                    "amount": take,
                    "consumed_at": self.now,
                }
            )
        repository.insert_consumptions(self.session, rows)

    def _recover_debt(self, lot: Lot, *, fresh: bool = False) -> None:
        """Pay the member's debt from a lot that just became spendable."""
        if self.debt <= 0 or lot.remaining <= 0:
            return
        rows = []
        for entry_id, missing in repository.uncovered_debits(self.session, self.member_id):
            take = min(missing, lot.remaining, self.debt)
            if take <= 0:
                break
            lot.remaining -= take
            self.debt -= take
            rows.append(
                {
                    "store_id": self.store_id,
                    "member_id": self.member_id,
                    "entry_id": entry_id,
                    "lot_id": lot.id,
                    "amount": take,
                    "consumed_at": self.now,
                }
            )
        repository.insert_consumptions(self.session, rows)
        self._change_lot(lot, remaining=lot.remaining)

    def take_lot(self, lot: Lot, *, kind: str, key: str, details: dict[str, Any]) -> int:
        """Debit what is left of one lot, from its own bucket; return the points."""
        points = lot.remaining
        if points <= 0:
            return 0
        entry_id = self._entry(
            kind=kind,
            available_delta=-points if lot.active else 0,
            pending_delta=0 if lot.active else -points,
            key=key,
            order_id=lot.order_id,
            details={"lot_id": lot.id, **details},
        )
        self._consume(entry_id, [(lot, points)])
        return points

    def activate(self, lot: Lot) -> None:
        """Make a pending lot spendable; its expiry clock starts at its activation time."""
        activated_at = lot.activates_at or self.now
        lot.activated_at = activated_at
        lot.expires_at = self.program.expiry.expires_at(activated_at)
        self._change_lot(lot, activated_at=activated_at, expires_at=lot.expires_at)
        if lot.remaining > 0:
            self._entry(
                kind="activate",
                available_delta=lot.remaining,
                pending_delta=-lot.remaining,
                key=f"lot:{lot.id}:activate",
                order_id=lot.order_id,
                details={"lot_id": lot.id, "activated_at": activated_at.isoformat()},
            )
            self._recover_debt(lot)

    def expire(self, lot: Lot) -> int:
        """Take what is left of a lapsed lot; return the points expired."""
        points = lot.remaining
        if points <= 0:
            return 0
        entry_id = self._entry(
            kind="expire",
            available_delta=-points,
            pending_delta=0,
            key=f"lot:{lot.id}:expire",
            order_id=lot.order_id,
            details={"lot_id": lot.id, "expired_at": lot.expires_at.isoformat()}
            if lot.expires_at
            else {"lot_id": lot.id},
        )
        self._consume(entry_id, [(lot, points)])
        return points

    def schedule(self, lot: Lot, activates_at: datetime) -> None:
        """Set when a pending lot activates (e.g. once its order is delivered)."""
        lot.activates_at = activates_at
        self._lots_due = True
        self._change_lot(lot, activates_at=activates_at)

    def activate_due(self, due: list[Lot] | None = None) -> int:
        """Activate the pending lots whose activation time has come; return the points."""
        activated = 0
        for lot in sorted(self.due_lots() if due is None else due, key=lambda lot: lot.id):
            if (
                not lot.active
                and lot.remaining > 0
                and lot.activates_at is not None
                and lot.activates_at <= self.now
            ):
                activated += lot.remaining
                self.activate(lot)
        return activated

    def expire_lapsed(self, due: list[Lot] | None = None) -> int:
        """Expire what is left of active lots past their expiry; return the points."""
        expired = 0
        for lot in sorted(self.due_lots() if due is None else due, key=_lot_sort_key):
            if lot.active and lot.expires_at is not None and lot.expires_at <= self.now:
                expired += self.expire(lot)
        return expired

    def settle(self) -> tuple[int, int]:
        """Activate the pending lots that are due and expire the active ones that lapsed.

        Runs before every debit, so nothing lapsed is ever spent and nothing due is refused.
        Returns (points activated, points expired).
        """
        if not self._lots_due:
            return 0, 0
        due = self.due_lots()
        if not due:
            self._lots_due = False
            return 0, 0
        return self.activate_due(due), self.expire_lapsed(due)

    def notice(self, kind: str, *, dedupe_key: str, payload: dict[str, Any]) -> dict[str, Any]:
        """A notice row about this member (queue it with `self.notices.append`)."""
        return {
            "store_id": self.store_id,
            "member_id": self.member_id,
            "kind": kind,
            "dedupe_key": dedupe_key,
            "payload": {"customer_id": self.customer_id, **payload},
            "created_at": self.now,
        }

    def save(self) -> None:
        """Write lot changes, notices and the new balances (conditional on the balances read).

        In a book opened with `defer_balances`, the balances are only noted here and written by
        whoever opened it (`take_balances`), in the same transaction.
        """
        self._flush_lots()
        if self.notices:
            repository.add_notices(self.session, self.notices)
            self.notices = []
        balances = (self.available, self.pending, self.debt)
        if balances != self._read:
            if self._defer_balances:
                return
            repository.update_member_balances(
                self.session,
                member_id=self.member_id,
                expected=self._read,
                balances=balances,
                now=self.now,
            )
            self._read = balances

    def take_balances(self) -> tuple[tuple[int, int, int], tuple[int, int, int]] | None:
        """In a book opened with `defer_balances`: the balances (as read, as now) that `save`
        left for the caller to write, or None when they did not change."""
        balances = (self.available, self.pending, self.debt)
        if not self._defer_balances or balances == self._read:
            return None
        return self._read, balances

    def balances(self) -> dict[str, int]:
        """The member's balances as they stand in this transaction."""
        return {"available": self.available, "pending": self.pending, "debt": self.debt}


# ---- opening a member under lock ---------------------------------------------------------------

_PROGRAM_CACHE: dict[tuple[int, int], tuple[dict[str, Any], Program]] = {}
# Through psycopg, the last program row read per engine and store: (the row's token, see
# `repository.lock_member_for_request`, program); the locking read leaves the document out
# when the token is the one held here.
_PROGRAM_ROWS: weakref.WeakKeyDictionary[Engine, dict[int, tuple[str, Program]]] = (
    weakref.WeakKeyDictionary()
)


def load_program(session: Session, store_id: int) -> tuple[int, Program] | None:
    """The store's program in force (validated once per process and version, see
    `cached_program`)."""
    found = repository.latest_program(session, store_id)
    if found is None:
        return None
    version, document = found
    return version, cached_program(store_id, version, document)


def cached_program(store_id: int, version: int, document: dict[str, Any]) -> Program:
    """The validated program of a stored version, validating each version once per process.

    The cache is keyed by store and version and checked against the stored document: a version
    is never rewritten once committed, but one written in a transaction that rolled back can be
    written again, differently, under the same number.
    """
    cached = _PROGRAM_CACHE.get((store_id, version))
    if cached is not None and cached[0] == document:
        return cached[1]
    program = program_from_document(document)
    _PROGRAM_CACHE[(store_id, version)] = (document, program)
    return program


def require_program(session: Session, store_id: int) -> tuple[int, Program]:
    """The store's program in force; ProgramNotConfiguredError when it has none."""
    found = load_program(session, store_id)
    if found is None:
        raise _no_program(store_id)
    return found


def _no_program(store_id: int) -> ProgramNotConfiguredError:
    return ProgramNotConfiguredError(
        f"store {store_id} has no membership program; set one with "
        f"`patronage loyalty program set --store {store_id}`"
    )


def open_member(
    session: Session,
    *,
    store_id: int,
    customer_id: int,
    program: Program,
    program_version: int,
    now: datetime,
    create: bool = True,
) -> MemberBook | None:
    """Lock the member row of a customer (enrolling them first when `create`) and open its book.

    A member row proves the customer belongs to the store; only without one is the customer
    looked up (NotFoundError when it is not the store's).
    """
    row = repository.lock_member(session, store_id, customer_id)
    if row is None:
        if not repository.customer_exists(session, store_id, customer_id):
            raise NotFoundError(f"customer {customer_id} does not exist in this store")
        if not create:
            return None
        repository.ensure_members(session, [new_member_row(store_id, customer_id, program, now)])
        row = repository.lock_member(session, store_id, customer_id)
        assert row is not None
    return MemberBook(
        session,
        store_id=store_id,
        member=row,
        program=program,
        program_version=program_version,
        now=now,
    )


def new_member_row(
    store_id: int, customer_id: int, program: Program, now: datetime
) -> dict[str, Any]:
    """A fresh member row in the first tier."""
    return {
        "store_id": store_id,
        "customer_id": customer_id,
        "available_points": 0,
        "pending_points": 0,
        "debt_points": 0,
        "tier": program.tiers[0].name,
        "tier_since_at": now,
        "tier_reviewed_at": None,
        "downgrade_due_at": None,
        "rolling_spend": 0,
        "rolling_orders": 0,
        "heritage_since_at": None,
        "referral_code": None,
        "enrolled_at": now,
        "updated_at": now,
    }


# ---- idempotent requests -----------------------------------------------------------------------


def request_hash(request: dict[str, Any]) -> str:
    """A stable hash of a request (canonical JSON)."""
    text = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def idempotent(
    session: Session,
    *,
    store_id: int,
    key: str,
    request: dict[str, Any],
    work: Callable[[], dict[str, Any]],
    now: datetime | None = None,
) -> tuple[dict[str, Any], bool]:
    """Perform `work` once per (store, key); return (its result, whether this was a replay).

    A replay with the same request returns the stored result; with a different request it raises
    IdempotencyKeyReusedError. On PostgreSQL two first attempts with one key may race: the loser's
    INSERT of the key waits for the winner and then fails, and the retry finds the winner's
    result. The work runs atomically (`run_atomically`): a mutation that fails leaves nothing
    behind (not even the lapses it settled first), and stores no key, so the key may be tried
    again.
    """
    _check_key(key)
    fingerprint = request_hash(request)
    moment = now or utcnow()

    def attempt() -> tuple[dict[str, Any], bool]:
        found = repository.find_idempotency(session, store_id, key)
        if found is not None:
            return _replay(key, fingerprint, found), True
        return _performed(session, store_id, key, fingerprint, work(), moment)

    return run_atomically(session, attempt)


_ATTEMPTS = 3


@dataclass
class Opened:
    """What a member mutation works with: the member's book (None when the customer is not a
    member and the mutation does not enrol), the program in force and the store's settings."""

    book: MemberBook | None
    program: Program
    program_version: int
    currency: str
    timezone: str


def mutate_member(
    session: Session,
    *,
    store_id: int,
    customer_id: int,
    key: str,
    request: dict[str, Any],
    work: Callable[[Opened], dict[str, Any]],
    now: datetime,
    create: bool = True,
) -> tuple[dict[str, Any], bool]:
    """`idempotent` for the mutation of one member, with the usual reads folded into one.

    One statement locks the member row and reads the program in force, the request's stored key
    and whether any lot is due, so a plain earn or spend costs that read, its writes and the key.
    A customer who is not yet a member takes the long way (key, program, customer, enrolment).
    The guarantees are `idempotent`'s: a replay returns the stored result, the same key with a
    different request is refused, and failed work leaves nothing behind.
    """
    _check_key(key)
    fingerprint = request_hash(request)

    rows_held = _PROGRAM_ROWS.setdefault(session.get_bind().engine, {})
    held = rows_held.get(store_id)

    def attempt() -> tuple[dict[str, Any], bool]:
        row = repository.lock_member_for_request(
            session,
            store_id,
            customer_id,
            key=key,
            now=now,
            known_program=held[0] if held else None,
        )
        if row is None:
            found = repository.find_idempotency(session, store_id, key)
            if found is not None:
                return _replay(key, fingerprint, found), True
            version, program = require_program(session, store_id)
            book = open_member(
                session,
                store_id=store_id,
                customer_id=customer_id,
                program=program,
                program_version=version,
                now=now,
                create=create,
            )
            settings = repository.store_currency_and_timezone(session, store_id)
            currency, timezone = settings or ("USD", "UTC")
        else:
            if row["stored_hash"] is not None:
                stored = (row["stored_hash"], row["stored_response"])
                return _replay(key, fingerprint, stored), True
            if row["program_version"] is None:
                raise _no_program(store_id)
            version = row["program_version"]
            if row["program_document"] is None:
                assert held is not None and held[0] == row["program_row"]
                program = held[1]
            else:
                program = cached_program(store_id, version, row["program_document"])
                if row.get("program_row") is not None:
                    rows_held[store_id] = (row["program_row"], program)
            book = MemberBook(
                session,
                store_id=store_id,
                member=row,
                program=program,
                program_version=version,
                now=now,
                lots_due=bool(row["lots_due"]),
                defer_balances=repository.records_balances_with_key(session),
            )
            currency, timezone = row["base_currency"], row["timezone"]
        response = work(Opened(book, program, version, currency, timezone))
        moved = book.take_balances() if book is not None else None
        if book is None or moved is None:
            return _performed(session, store_id, key, fingerprint, response, now)
        # One statement writes the new balances (still conditional on those read) and the key.
        repository.update_balances_and_record(
            session,
            member_id=book.member_id,
            expected=moved[0],
            balances=moved[1],
            record={
                "store_id": store_id,
                "key": key,
                "request_hash": fingerprint,
                "response": response,
                "created_at": now,
            },
        )
        return response, False

    return run_atomically(session, attempt)


def _performed(
    session: Session,
    store_id: int,
    key: str,
    fingerprint: str,
    response: dict[str, Any],
    now: datetime,
) -> tuple[dict[str, Any], bool]:
    """Record a performed request's key with its result; return (the result, not a replay)."""
    repository.insert_idempotency(
        session, store_id=store_id, key=key, request_hash=fingerprint, response=response, now=now
    )
    return response, False


def _check_key(key: str) -> None:
    if not key or len(key) > 200:
        raise IdempotencyKeyReusedError("an idempotency key must be 1 to 200 characters")


def _replay(key: str, fingerprint: str, stored: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """The stored response of a key, if it was stored for the same request."""
    stored_hash, response = stored
    if stored_hash != fingerprint:
        raise IdempotencyKeyReusedError(
            f"idempotency key {key!r} was already used for a different request"
        )
    return response


def run_atomically(session: Session, attempt: Callable[[], _T]) -> _T:
    """Run `attempt` so that if it fails it leaves nothing behind, and again after losing a
    unique-key race (PostgreSQL: the loser's INSERT waits for the winner, fails, and the next
    attempt finds the winner's row).

    Inside a transaction that holds other work, the attempt runs in a savepoint. When the session
    has no transaction yet, the attempt is the whole transaction: it is begun here, left open for
    the caller to commit, and rolled back on failure, which leaves just as little behind and
    spares two round trips (SAVEPOINT, RELEASE) per mutation.
    """
    for attempt_number in range(_ATTEMPTS):
        scope = session.begin_nested() if session.in_transaction() else session.begin()
        try:
            result = attempt()
        except IntegrityError:
            scope.rollback()
            if attempt_number == _ATTEMPTS - 1:
                raise
            continue
        except BaseException:
            scope.rollback()
            raise
        if scope.nested:
            scope.commit()
        return result
    raise AssertionError("unreachable")


# ---- verification ------------------------------------------------------------------------------


@dataclass
class Check:
    """One invariant and the rows that break it."""

    name: str
    description: str
    violations: int
    examples: list[int]

    @property
    def holds(self) -> bool:
        """Whether no row breaks the invariant."""
        return self.violations == 0


@dataclass
class VerifyReport:
    """The outcome of `verify`: every invariant checked over the whole store."""

    store_id: int
    members: int
    entries: int
    lots: int
    negative_allowed: bool
    checks: list[Check]

    @property
    def ok(self) -> bool:
        """Whether every invariant holds."""
        return all(check.holds for check in self.checks)

    def as_dict(self) -> dict[str, Any]:
        """The report as plain data."""
        return {
            "store_id": self.store_id,
            "ok": self.ok,
            "members": self.members,
            "entries": self.entries,
            "lots": self.lots,
            "negative_allowed": self.negative_allowed,
            "checks": [
                {
                    "name": check.name,
                    "description": check.description,
                    "holds": check.holds,
                    "violations": check.violations,
                    "examples": check.examples,
                }
                for check in self.checks
            ],
        }


def verify(session: Session, store_id: int, *, examples: int = 10) -> VerifyReport:
    """Prove the ledger of a store with set-based SQL: three passes (members, lots, entries, each
    joined to the others aggregated with GROUP BY) count the violations of every invariant, so it
    runs over millions of members without loading them into Python."""
    found = load_program(session, store_id)
    negative_allowed = bool(found and found[1].returns.spent_points_policy == "negative_balance")
    if session.get_bind().dialect.name == "postgresql":
        # Room for the hash aggregates of millions of rows, for this transaction only.
        session.execute(text("SET LOCAL work_mem = '256MB'"))
    counts = repository.invariant_counts(session, store_id)
    specs: list[tuple[str, str, tuple[str, ...]]] = [
        (
            "balance = sum of entries",
            "each member's available and pending balances equal the sums of their entries",
            ("balance",),
        ),
        (
            "lot remaining = credit - consumptions",
            "each lot's remaining points equal its credit minus what debits consumed, "
            "within [0, credit] (no lot over-consumed)",
            ("lots",),
        ),
        (
            "one lot per credit",
            "each credit entry has exactly one lot of its amount; debits have none",
            ("lot_credit", "entry_credit"),
        ),
        (
            "lots add up to balances",
            "pending lots sum to the pending balance; active lots to available + debt; "
            "no negative pending or debt; debt only when nothing is spendable",
            ("buckets",),
        ),
        (
            "no entry over-consumes",
            "no debit took more from lots than it debited; only debits consume",
            ("overconsumed",),
        ),
        (
            "debt = uncovered debits",
            "each member's debt equals what their debits left uncovered by lots",
            ("debt",),
        ),
        (
            "redemptions never overdraw",
            "redemptions, expiries, cancellations and debit adjustments are fully covered by lots",
            ("overdrawn",),
        ),
        (
            "no negative balance" + (" (allowed by policy)" if negative_allowed else ""),
            "no member's available balance is below zero"
            + (", except debt from refunds of spent points" if negative_allowed else ""),
            () if negative_allowed else ("negative",),
        ),
    ]
    checks = []
    for name, description, invariants in specs:
        violations = sum(counts[invariant] for invariant in invariants)
        # Only a failing check is queried again, for a few example ids.
        sample = (
            repository.invariant_examples(session, store_id, invariants, examples)
            if violations
            else []
        )
        checks.append(Check(name, description, violations, sample))
    members, entry_count, lot_count = counts["members"], counts["entries"], counts["lot_count"]
    return VerifyReport(store_id, members, entry_count, lot_count, negative_allowed, checks)
