"""Fixtures: the suite runs against SQLite and PostgreSQL alike.

Each backend gets a fresh database, migrated once per test session. A `session` runs inside a
transaction that is rolled back; tests that need committed data (live servers, concurrency) use
`engine` with their own store, which isolates them because no query crosses stores.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from patronage.db.engine import create_engine_for
from patronage.db.migrate import upgrade
from patronage.stores.models import Store
from patronage.stores.service import NewStore, create_store

POSTGRES_ADMIN = os.environ.get(
    "PATRONAGE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
REQUIRE_SERVICES = os.environ.get("PATRONAGE_REQUIRE_SERVICES") == "1"


def skip_or_fail(reason: str) -> None:
    """Skip a test for a missing service, or fail when CI requires every service."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (PATRONAGE_REQUIRE_SERVICES=1 turns this skip into a failure)")
    pytest.skip(reason)


@pytest.fixture(scope="session", autouse=True)
def _secret_key(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ.setdefault("PATRONAGE_SECRET_KEY", "test-master-secret")
    os.environ.setdefault(
        "PATRONAGE_SECRET_KEY_FILE", str(tmp_path_factory.mktemp("keys") / "patronage.key")
    )


def _postgres_url() -> Iterator[str]:
    name = f"patronage_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        skip_or_fail(f"PostgreSQL is not reachable at {POSTGRES_ADMIN}: {error}")
        return
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated, empty database of each backend."""
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("db") / "patronage.db"
        yield f"sqlite:///{path}"
    else:
        yield from _postgres_url()


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on the migrated test database."""
    engine = create_engine_for(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session whose work is rolled back after the test."""
    connection = engine.connect()
    transaction = connection.begin()
    session = Session(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    try:
        yield session
    finally:
        session.close()
        transaction.rollback()
        connection.close()


@pytest.fixture
def new_store(session: Session) -> NewStore:
    """A USD store in Shanghai time with its keys, inside the rolled-back session."""
    return create_store(
        session,
        name="Test Store",
        base_currency="USD",
        timezone="Asia/Shanghai",
        markets=["US", "DE", "IN"],
    )


@pytest.fixture
def store(new_store: NewStore) -> Store:
    """The store of `new_store`."""
    return new_store.store


@pytest.fixture
def committed_store(engine: Engine) -> NewStore:
    """A store whose rows are committed, for tests that go through the API or other processes."""
    from patronage.db.session import session_scope

    with session_scope(engine) as session:
        return create_store(
            session,
            name=f"Live {uuid.uuid4().hex[:6]}",
            base_currency="USD",
            timezone="Asia/Shanghai",
            markets=["US", "DE", "IN"],
        )


@pytest.fixture
def api_client(engine: Engine) -> Iterator[TestClient]:
    """An in-process HTTP client for the API on the test database."""
    from patronage.api.app import create_app

    with TestClient(create_app(engine)) as client:
        yield client


@pytest.fixture
def live_server(engine: Engine) -> Iterator[str]:
    """The API served by uvicorn on a loopback port, for real client libraries; yields its URL."""
    from tests.support import serve_in_thread

    with serve_in_thread(engine) as url:
        yield url


@pytest.fixture
def cli_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point the `patronage` command at a fresh SQLite file; yields its URL."""
    from patronage.config import get_settings
    from patronage.db.engine import reset_engine

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("PATRONAGE_DATABASE_URL", url)
    get_settings.cache_clear()
    reset_engine()
    try:
        yield url
    finally:
        reset_engine()
        get_settings.cache_clear()
