"""Fixtures of the membership tests: a frozen clock, a store with a program, customers."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from patronage.customers.schemas import CustomerIn
from patronage.customers.service import resolve_customers
from patronage.db.session import session_scope
from patronage.kit.clock import Clock, FrozenClock, get_clock, set_clock
from patronage.loyalty.program import Program, Reward, default_program, set_program
from patronage.stores.models import Store
from patronage.stores.service import NewStore

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> Iterator[FrozenClock]:
    """The process clock frozen at START; tests move it."""
    previous: Clock = get_clock()
    frozen = FrozenClock(START)
    set_clock(frozen)
    try:
        yield frozen
    finally:
        set_clock(previous)


@pytest.fixture
def program() -> Program:
    """The default (seed) program."""
    return default_program()


@pytest.fixture
def loyal_store(session: Session, store: Store, program: Program, clock: FrozenClock) -> Store:
    """The test store with the default program in force."""
    set_program(session, store.id, program, source="test")
    return store


CustomerFactory = Callable[..., int]


@pytest.fixture
def make_customer(session: Session, store: Store) -> CustomerFactory:
    """Create a customer of the test store and return its id."""
    counter = {"n": 0}

    def make(**values: Any) -> int:
        counter["n"] += 1
        values.setdefault("email", f"member{counter['n']}@example.com")
        customer = CustomerIn(source="test", **values)
        return resolve_customers(session, store.id, [customer])[0].customer_id

    return make


@pytest.fixture
def live_member(engine: Engine, committed_store: NewStore) -> tuple[NewStore, int]:
    """A committed store with the default program plus a 100-point reward, and one customer."""
    program = default_program()
    program.rewards.append(
        Reward(code="sticker", name="Sticker", kind="merchandise", cost_points=100)
    )
    with session_scope(engine) as session:
        set_program(session, committed_store.store.id, program, source="test")
        customer_id = resolve_customers(
            session,
            committed_store.store.id,
            [CustomerIn(source="test", email=f"live-{uuid.uuid4().hex[:8]}@example.com")],
        )[0].customer_id
    return committed_store, customer_id
