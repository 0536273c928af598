"""Fixtures of the worker tests: a frozen clock, queues on SQLite and Redis, committed stores."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from patronage.db.session import session_scope
from patronage.kit.clock import FrozenClock
from patronage.loyalty.program import default_program, set_program
from patronage.orders.schemas import OrderIn
from patronage.stores.models import Store
from patronage.stores.service import NewStore
from patronage.worker.queue import create_queue
from tests.conftest import skip_or_fail
from tests.loyalty.conftest import START, clock  # noqa: F401 - the same frozen clock

REDIS_URL = os.environ.get("PATRONAGE_TEST_REDIS", "redis://127.0.0.1:6379/11")
LOCK_TTL = 600


@pytest.fixture
def sqlite_queue(tmp_path: Path) -> Any:
    """A huey queue in a SQLite file of its own (the embedded default)."""
    return create_queue(f"sqlite:///{tmp_path / 'queue.db'}", name=f"test-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def redis_url() -> str:
    """The Redis URL of the tests (database 11), or a skip when Redis is not reachable."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as error:
        skip_or_fail(f"Redis is not reachable at {REDIS_URL}: {error}")
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def redis_queue_name(redis_url: str) -> Iterator[str]:
    """A queue name of the test's own on the test Redis; its keys are deleted afterwards."""
    import redis

    name = f"patronagetest{uuid.uuid4().hex[:10]}"  # huey keeps only letters and digits
    yield name
    client = redis.Redis.from_url(redis_url)
    try:
        for key in client.scan_iter(match=f"*{name}*"):
            client.delete(key)
    finally:
        client.close()


@pytest.fixture
def redis_queue(redis_url: str, redis_queue_name: str) -> Any:
    """A huey queue on the test Redis."""
    return create_queue(redis_url, name=redis_queue_name)


@pytest.fixture
def loyal_store(engine: Engine, committed_store: NewStore, clock: FrozenClock) -> Store:  # noqa: F811
    """A committed store with the default program in force."""
    with session_scope(engine) as session:
        set_program(session, committed_store.store.id, default_program(), source="test")
    return committed_store.store


def make_order(external_id: str, email: str, **overrides: Any) -> OrderIn:
    """A paid USD order of 100 merchandise placed at START."""
    values: dict[str, Any] = dict(
        source="shopify",
        external_id=external_id,
        currency="USD",
        placed_at=START,
        paid_at=START,
        subtotal=Decimal("100.00"),
        total=Decimal("110.00"),
        shipping=Decimal("10.00"),
        email=email,
    )
    values.update(overrides)
    return OrderIn(**values)


def record_orders(engine: Engine, store_id: int, *orders: OrderIn) -> list[int]:
    """Record orders in a committed unit of work, as an importer does; return their ids."""
    from patronage.orders.service import upsert_orders
    from patronage.stores.service import get_store

    with session_scope(engine) as session:
        return upsert_orders(session, get_store(session, store_id), list(orders)).order_ids


def customer_id(engine: Engine, store_id: int, email: str) -> int:
    """The id of the store's customer with this email."""
    from patronage.customers.repository import find_by_email

    with session_scope(engine) as session:
        found = find_by_email(session, store_id, email)
        assert found is not None
        return found.id
