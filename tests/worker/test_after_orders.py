"""After a commit that changed orders, one rescoring per store is queued; a rollback queues none."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from patronage.db.session import session_scope
from patronage.orders.service import upsert_orders
from patronage.stores.service import NewStore, get_store
from patronage.worker.after_orders import (
    disable_rescore_after_orders,
    enable_rescore_after_orders,
    queue_url_for,
    rescoring_after_orders,
)
from patronage.worker.settings import WorkerSettings
from patronage.worker.tasks import build_worker
from tests.worker.conftest import customer_id, make_order


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[WorkerSettings]:
    """Settings with a SQLite queue of the test's own; rescoring after orders switched on."""
    chosen = WorkerSettings(
        queue_url=f"sqlite:///{tmp_path / 'queue.db'}",
        queue_name=f"after{uuid.uuid4().hex[:8]}",
        rescore_delay_seconds=0,
    )
    assert enable_rescore_after_orders(chosen)
    yield chosen
    disable_rescore_after_orders()


def pending(settings: WorkerSettings) -> list[tuple[str, tuple[object, ...]]]:
    """The tasks waiting in the settings' queue, as (name, args)."""
    queue = build_worker(settings).huey  # its tasks registered, to read them back
    return [(task.name, task.args) for task in queue.pending()]


def test_a_commit_that_changed_orders_queues_one_rescoring_of_their_customers(
    engine: Engine, committed_store: NewStore, settings: WorkerSettings
) -> None:
    store_id = committed_store.store.id
    with session_scope(engine) as session:
        store = get_store(session, store_id)
        upsert_orders(session, store, [make_order("A-1", "ana@example.com")])
        upsert_orders(session, store, [make_order("B-1", "ben@example.com")])
    ana = customer_id(engine, store_id, "ana@example.com")
    ben = customer_id(engine, store_id, "ben@example.com")
    [(name, args)] = pending(settings)
    assert name == "patronage.rescore_customers"
    assert args[:2] == (store_id, sorted([ana, ben]))


def test_a_rolled_back_change_queues_nothing_and_is_forgotten(
    engine: Engine, committed_store: NewStore, settings: WorkerSettings
) -> None:
    store_id = committed_store.store.id
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        upsert_orders(session, get_store(session, store_id), [make_order("A-1", "ana@example.com")])
        raise RuntimeError("the request failed after the orders were written")
    assert pending(settings) == []

    with session_scope(engine) as session:
        store = get_store(session, store_id)
        upsert_orders(session, store, [make_order("C-1", "cy@example.com")])
        session.rollback()  # the first transaction of this session rolls back ...
        upsert_orders(session, store, [make_order("D-1", "di@example.com")])
    di = customer_id(engine, store_id, "di@example.com")
    [(_, args)] = pending(settings)
    assert args[:2] == (store_id, [di])  # ... and only the committed customer is queued


def test_nothing_is_queued_when_switched_off_or_outside_the_block(
    engine: Engine, committed_store: NewStore, tmp_path: Path
) -> None:
    off = WorkerSettings(queue_url=f"sqlite:///{tmp_path / 'q.db'}", rescore_after_orders=False)
    assert not enable_rescore_after_orders(off)
    store_id = committed_store.store.id
    with session_scope(engine) as session:
        upsert_orders(session, get_store(session, store_id), [make_order("A-1", "ana@example.com")])
    assert pending(off) == []


def test_the_block_switches_it_on_and_back_off(
    engine: Engine, committed_store: NewStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = f"sqlite:///{tmp_path / 'block.db'}"
    monkeypatch.setenv("PATRONAGE_QUEUE_URL", queue)
    monkeypatch.setenv("PATRONAGE_QUEUE_NAME", "block")
    store_id = committed_store.store.id
    with rescoring_after_orders(), session_scope(engine) as session:
        upsert_orders(session, get_store(session, store_id), [make_order("A-1", "ana@example.com")])
    with session_scope(engine) as session:  # after the block: nothing more is queued
        upsert_orders(session, get_store(session, store_id), [make_order("B-1", "ben@example.com")])
    settings = WorkerSettings(queue_url=queue, queue_name="block")
    [(_, args)] = pending(settings)
    assert args[:2] == (store_id, [customer_id(engine, store_id, "ana@example.com")])


def test_an_unreachable_queue_is_logged_and_the_orders_stay_committed(
    engine: Engine, committed_store: NewStore, caplog: pytest.LogCaptureFixture
) -> None:
    unreachable = WorkerSettings(queue_url="redis://127.0.0.1:1/0", queue_name="nowhere")
    enable_rescore_after_orders(unreachable)
    try:
        store_id = committed_store.store.id
        with caplog.at_level(logging.ERROR, "patronage.worker"), session_scope(engine) as session:
            store = get_store(session, store_id)
            upsert_orders(session, store, [make_order("A-1", "ana@example.com")])
    finally:
        disable_rescore_after_orders()
    assert customer_id(engine, store_id, "ana@example.com") > 0
    assert f"could not queue the rescoring of store {store_id}" in caplog.text


def test_which_queue_a_database_reports_to(tmp_path: Path) -> None:
    defaults = WorkerSettings()
    database = tmp_path / "shop.db"
    assert queue_url_for(defaults, f"sqlite:///{database}") == (
        f"sqlite:///{tmp_path / 'shop-queue.db'}"
    )
    assert queue_url_for(defaults, "postgresql+psycopg://postgres@127.0.0.1/test") is None
    assert queue_url_for(defaults, "sqlite://") is None
    named = WorkerSettings(queue_url="redis://127.0.0.1:6379/3")
    assert queue_url_for(named, "postgresql+psycopg://x@y/z") == "redis://127.0.0.1:6379/3"


def test_an_import_queues_the_rescoring_of_the_customers_it_touched(
    cli_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from typer.testing import CliRunner

    from patronage.cli.main import app
    from tests.ingest.csv_support import FIXTURES

    queue = WorkerSettings(queue_url=f"sqlite:///{tmp_path / 'import-queue.db'}", queue_name="imp")
    monkeypatch.setenv("PATRONAGE_QUEUE_URL", queue.queue_url or "")
    monkeypatch.setenv("PATRONAGE_QUEUE_NAME", "imp")
    runner = CliRunner()
    store = json.loads(runner.invoke(app, ["stores", "create", "Q", "--json"]).stdout)["id"]
    for currency in ("EUR", "INR", "GBP"):
        runner.invoke(
            app, ["fx", "set", "--store", str(store), currency, "1", "--date", "2019-01-01"]
        )
    path = FIXTURES / "shopify_orders_export.csv"
    result = runner.invoke(app, ["import", "shopify-orders", str(path), "--store", str(store),
                                 "--report", str(tmp_path / "r.csv"), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    tasks = pending(queue)
    assert tasks and all(args[0] == store for _, args in tasks)
    assert len({customer for _, args in tasks for customer in args[1]}) >= 1
