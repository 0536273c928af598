"""The short path of a ledger mutation: one locking read (member, program, key, due lots), lots
consumed in SQL, the program validated once per version, and no savepoint when the mutation is
the whole transaction — with every guarantee of the long path."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, select, text
from sqlalchemy.orm import Session

from patronage.customers.schemas import CustomerIn
from patronage.customers.service import resolve_customers
from patronage.db.session import session_scope
from patronage.kit.clock import FrozenClock
from patronage.loyalty import repository
from patronage.loyalty.errors import IdempotencyKeyReusedError, InsufficientPointsError
from patronage.loyalty.ledger import open_member, require_program, verify
from patronage.loyalty.models import LedgerEntry, LotConsumption, PointLot
from patronage.loyalty.program import Program, default_program, set_program
from patronage.loyalty.schemas import PointsIn, RedemptionIn
from patronage.loyalty.service import change_points, redeem
from patronage.stores.models import Store
from patronage.stores.service import NewStore
from tests.loyalty.conftest import CustomerFactory
from tests.loyalty.test_ledger import earn, spend


@contextmanager
def counted(session: Session) -> Iterator[list[str]]:
    """The SQL statements the session sends inside the block (SAVEPOINT and RELEASE included)."""
    statements: list[str] = []
    engine = session.get_bind().engine

    def record(*arguments: Any) -> None:
        statements.append(arguments[2])

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_a_mutation_of_a_member_costs_one_read_and_its_writes(
    session: Session, loyal_store: Store, make_customer: CustomerFactory
) -> None:
    customer = make_customer()
    earn(session, loyal_store, customer, 700, "enrol")
    postgres = session.get_bind().dialect.name == "postgresql"
    with counted(session) as statements:
        earn(session, loyal_store, customer, 100, "earn")
    # Lock and read, the entry with its lot (one statement on PostgreSQL), balances and key (one
    # statement on PostgreSQL). The savepoint pair is there because the test session is inside a
    # transaction already.
    assert len([s for s in statements if "SAVEPOINT" not in s]) == (3 if postgres else 5)
    with counted(session) as statements:
        spend(session, loyal_store, customer, 250, "spend")
    # Lock and read, the entry with its consumptions and lots (one statement on PostgreSQL,
    # three on SQLite), balances and key (one statement on PostgreSQL).
    assert len([s for s in statements if "SAVEPOINT" not in s]) == (3 if postgres else 6)
    assert verify(session, loyal_store.id).ok


def test_debits_take_lots_by_expiry_not_by_age_and_never_expiring_lots_last(
    session: Session, loyal_store: Store, make_customer: CustomerFactory, clock: FrozenClock
) -> None:
    customer = make_customer()
    earn(session, loyal_store, customer, 100, "enrol")  # lot 1 expires in 12 months
    version, program = require_program(session, loyal_store.id)
    book = open_member(
        session,
        store_id=loyal_store.id,
        customer_id=customer,
        program=program,
        program_version=version,
        now=clock.now(),
    )
    assert book is not None
    soon = clock.now() + timedelta(days=10)
    book.credit(kind="transfer_in", points=30, key="never", pending=False, expires_at=None,
                activated_at=clock.now())  # fmt: skip
    book.credit(kind="transfer_in", points=40, key="soon", pending=False, expires_at=soon,
                activated_at=clock.now())  # fmt: skip
    book.save()
    lots = session.scalars(
        select(PointLot).where(PointLot.store_id == loyal_store.id).order_by(PointLot.id)
    ).all()
    yearly, never, soonest = lots
    assert spend(session, loyal_store, customer, 150, "spend") == 20
    entry_id = session.scalar(
        select(LedgerEntry.id).where(LedgerEntry.idempotency_key == "req:spend")
    )
    taken = session.execute(
        select(LotConsumption.lot_id, LotConsumption.amount)
        .where(LotConsumption.entry_id == entry_id)
        .order_by(LotConsumption.id)
    ).all()
    assert [tuple(row) for row in taken] == [(soonest.id, 40), (yearly.id, 100), (never.id, 10)]
    for lot in lots:
        session.refresh(lot)
    assert [lot.remaining for lot in lots] == [0, 20, 0]
    assert verify(session, loyal_store.id).ok


def test_a_redemption_reports_the_lots_it_consumed(
    session: Session, loyal_store: Store, make_customer: CustomerFactory, clock: FrozenClock
) -> None:
    customer = make_customer()
    earn(session, loyal_store, customer, 300, "first")
    clock.advance(timedelta(days=3))
    earn(session, loyal_store, customer, 300, "second")
    result, _ = redeem(
        session,
        store_id=loyal_store.id,
        customer_id=customer,
        redemption_in=RedemptionIn(reward="coupon-5"),
        idempotency_key="coupon",
    )
    lots = session.scalars(
        select(PointLot.id).where(PointLot.store_id == loyal_store.id).order_by(PointLot.id)
    ).all()
    assert result.available == 100
    assert result.details["lots"] == [[lots[0], 300], [lots[1], 200]]


def test_lapsed_points_are_expired_before_a_debit_on_the_short_path(
    session: Session, loyal_store: Store, make_customer: CustomerFactory, clock: FrozenClock
) -> None:
    customer = make_customer()
    earn(session, loyal_store, customer, 500, "old")
    clock.advance(timedelta(days=400))
    with pytest.raises(InsufficientPointsError, match="0 available, 100 needed"):
        spend(session, loyal_store, customer, 100, "too-late")
    earn(session, loyal_store, customer, 100, "fresh")
    assert spend(session, loyal_store, customer, 100, "spend") == 0
    assert verify(session, loyal_store.id).ok


def _with_coupon_cost(cost: int) -> Program:
    program = default_program()
    program.rewards = [
        reward.model_copy(update={"cost_points": cost}) if reward.code == "coupon-5" else reward
        for reward in program.rewards
    ]
    return program


def _redeem_coupon(session: Session, store: Store, customer: int, key: str) -> int:
    result, _ = redeem(
        session,
        store_id=store.id,
        customer_id=customer,
        redemption_in=RedemptionIn(reward="coupon-5"),
        idempotency_key=key,
    )
    return -result.points


def test_a_new_program_version_is_used_at_once_and_a_rolled_back_one_is_forgotten(
    session: Session, loyal_store: Store, make_customer: CustomerFactory
) -> None:
    customer = make_customer()
    earn(session, loyal_store, customer, 5000, "fund")
    assert _redeem_coupon(session, loyal_store, customer, "v1") == 500

    trial = session.begin_nested()
    set_program(session, loyal_store.id, _with_coupon_cost(700), source="test")
    assert _redeem_coupon(session, loyal_store, customer, "v2-trial") == 700
    trial.rollback()

    # Version 2 again, another document: the cached version 2 must not be served.
    set_program(session, loyal_store.id, _with_coupon_cost(300), source="test")
    assert _redeem_coupon(session, loyal_store, customer, "v2") == 300
    versions = session.scalars(
        select(LedgerEntry.program_version)
        .where(LedgerEntry.store_id == loyal_store.id, LedgerEntry.kind == "redeem")
        .order_by(LedgerEntry.id)
    ).all()
    assert versions == [1, 2]


@pytest.fixture
def live_customer(engine: Engine, committed_store: NewStore) -> tuple[int, int]:
    """A committed store with the default program and one customer: (store id, customer id)."""
    store_id = committed_store.store.id
    with session_scope(engine) as session:
        set_program(session, store_id, default_program(), source="test")
        customer = resolve_customers(
            session, store_id, [CustomerIn(source="test", email=f"{uuid.uuid4().hex}@ex.com")]
        )[0].customer_id
    return store_id, customer


def _points(session: Session, store_id: int, customer: int, points: int, key: str) -> int:
    kind = "earn" if points > 0 else "adjust"
    result, _ = change_points(
        session,
        store_id=store_id,
        customer_id=customer,
        points_in=PointsIn(kind=kind, points=points, reason="test"),
        idempotency_key=key,
    )
    return result.available


def test_a_failed_mutation_that_was_the_whole_transaction_leaves_nothing_behind(
    engine: Engine, live_customer: tuple[int, int], clock: FrozenClock
) -> None:
    store_id, customer = live_customer
    with session_scope(engine) as session:
        assert _points(session, store_id, customer, 100, "fund") == 100
    clock.advance(timedelta(days=400))  # the 100 points lapse: the debit settles, then refuses
    with Session(engine) as session:
        with pytest.raises(InsufficientPointsError):
            _points(session, store_id, customer, -50, "overdraft")
        session.commit()  # commits nothing: the failed mutation rolled its transaction back
    with Session(engine) as session:
        member = repository.get_member(session, store_id, customer)
        assert member is not None and member["available_points"] == 100  # not yet expired
        assert repository.find_idempotency(session, store_id, "overdraft") is None
        # The key was not stored, so it may be used again for another request.
        _points(session, store_id, customer, 20, "overdraft")
        session.commit()
        stored = repository.find_idempotency(session, store_id, "overdraft")
        assert stored is not None and stored[1]["kind"] == "earn"
    with session_scope(engine) as session:
        assert verify(session, store_id).ok


def test_a_failed_mutation_inside_a_larger_transaction_keeps_the_earlier_work(
    engine: Engine, live_customer: tuple[int, int]
) -> None:
    store_id, customer = live_customer
    with Session(engine) as session:
        assert _points(session, store_id, customer, 100, "first") == 100
        with pytest.raises(InsufficientPointsError):
            _points(session, store_id, customer, -500, "too-much")
        with pytest.raises(IdempotencyKeyReusedError):
            _points(session, store_id, customer, 5, "first")
        session.commit()
    with Session(engine) as session:
        member = repository.get_member(session, store_id, customer)
        assert member is not None and member["available_points"] == 100
        assert repository.find_idempotency(session, store_id, "too-much") is None
        assert verify(session, store_id).ok


def test_the_key_is_not_recorded_when_the_balances_moved_under_the_lock(
    session: Session, loyal_store: Store, make_customer: CustomerFactory
) -> None:
    customer = make_customer()
    earn(session, loyal_store, customer, 300, "enrol")
    member = repository.get_member(session, loyal_store.id, customer)
    assert member is not None
    # Another writer that ignored the lock: balances and key are written together, so neither is.
    moved = (member["available_points"] + 1, member["pending_points"], member["debt_points"])
    record = {"store_id": loyal_store.id, "key": "late", "request_hash": "x", "response": {},
              "created_at": member["updated_at"]}  # fmt: skip
    if session.get_bind().dialect.name == "postgresql":
        with pytest.raises(RuntimeError, match="changed under its lock"):
            repository.update_balances_and_record(
                session, member_id=member["id"], expected=moved, balances=moved, record=record
            )
        assert repository.find_idempotency(session, loyal_store.id, "late") is None
    assert spend(session, loyal_store, customer, 100, "spend") == 200


def test_a_key_raced_by_two_requests_is_performed_once(
    engine: Engine, committed_store: NewStore
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's writers never run at once: the second waits for BEGIN IMMEDIATE")
    store_id = committed_store.store.id
    with session_scope(engine) as session:
        set_program(session, store_id, default_program(), source="test")
        first_customer, second_customer = (
            found.customer_id
            for found in resolve_customers(
                session,
                store_id,
                [CustomerIn(source="test", email=f"{uuid.uuid4().hex}@ex.com") for _ in "ab"],
            )
        )
    outcome: list[object] = []

    def second_request() -> None:
        with Session(engine) as session:
            try:
                _points(session, store_id, second_customer, 100, "raced")
                session.commit()
                outcome.append("performed")
            except IdempotencyKeyReusedError as error:
                outcome.append(error)

    with Session(engine) as first:
        # Another member, so no row lock orders them: both read the key as new.
        _points(first, store_id, first_customer, 100, "raced")
        racer = threading.Thread(target=second_request)
        racer.start()
        with engine.connect() as watcher:
            # Until the second request's key insert waits for the first one's uncommitted key.
            while racer.is_alive() and not watcher.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
            ):
                time.sleep(0.005)
        first.commit()
    racer.join()
    # Its insert failed as an IntegrityError, the retry found the first request's key.
    assert len(outcome) == 1 and isinstance(outcome[0], IdempotencyKeyReusedError)
    with Session(engine) as session:
        member = repository.get_member(session, store_id, second_customer)
        assert member is None or member["available_points"] == 0
        assert verify(session, store_id).ok
