"""Kept aggregates: refreshed after each batch of orders, rescoring from them equals a full run."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from patronage.analytics import repository
from patronage.analytics.aggregates import refresh_customer_aggregates
from patronage.analytics.engines import DatabaseEngine
from patronage.analytics.scoring import SCORE_COLUMNS, ScoringSettings, full_score_rows
from patronage.analytics.service import (
    rebuild_aggregates,
    score_from_aggregates,
    store_zone_offsets,
)
from patronage.customers.models import Customer
from patronage.kit.clock import FrozenClock
from patronage.orders.models import Order
from patronage.orders.schemas import OrderIn, RefundIn
from patronage.orders.service import upsert_orders
from patronage.stores.models import Store
from tests.analytics.analytics_fixture import (
    AS_OF,
    add_fixture_events,
    at,
    fixture_orders,
)
from tests.analytics.test_scoring import frozen_clock  # noqa: F401 - fixture


def _upsert_and_refresh(session: Session, store: Store, orders: list[OrderIn]) -> int:
    """What orders.service.upsert_orders will do at its end: refresh the buyers' aggregates."""
    summary = upsert_orders(session, store, orders)
    customer_ids = session.scalars(
        select(Order.customer_id).where(Order.id.in_(summary.order_ids))
    ).all()
    return refresh_customer_aggregates(session, store.id, customer_ids)


def _full_scores(session: Session, store: Store) -> list[dict[str, Any]]:
    engine = DatabaseEngine(session)
    offsets, default = store_zone_offsets(session, store, AS_OF)
    rows = engine.fetch(
        full_score_rows(
            engine.sources(),
            store.id,
            as_of=AS_OF,
            settings=ScoringSettings(),
            zone_offsets=offsets,
            default_offset=default,
            ranking=engine.ranking,
        )
    )
    return sorted(rows, key=lambda row: row["customer_id"])


def _stored_scores(session: Session, store: Store) -> list[dict[str, Any]]:
    scale = Decimal(10_000)
    rows = []
    for row in repository.store_scores(session, store.id):
        values = {column: row[column] for column in SCORE_COLUMNS}
        for column in repository.MONEY_COLUMNS:
            if values[column] is not None:
                values[column] = int(values[column] * scale)
        rows.append(values)
    return rows


def test_rescoring_from_refreshed_aggregates_equals_a_full_recomputation(
    session: Session,
    store: Store,
    frozen_clock: FrozenClock,  # noqa: F811
) -> None:
    orders = fixture_orders()
    first, second = orders[:8], orders[8:]
    assert _upsert_and_refresh(session, store, first) == 3  # Vera, Ned, Ava
    ids = {
        str(email).split("@")[0].capitalize(): customer_id
        for email, customer_id in session.execute(
            select(Customer.email, Customer.id).where(Customer.store_id == store.id)
        )
    }
    add_fixture_events(session, store, {**ids, "Pia": ids["Ned"]})  # Pia's event goes to Ned
    _upsert_and_refresh(session, store, second)
    # Later: a refund on one of Vera's orders, Ava's unpaid order gets paid, a new order by Ned.
    vera_first = replace(orders[0], refunds=[RefundIn("V0-R", Decimal("100"), at(2026, 4, 20))])
    ava_paid = replace(orders[8], paid_at=at(2026, 6, 6))
    ned_again = replace(orders[6], external_id="N2", placed_at=at(2026, 6, 28), lines=[])
    touched = _upsert_and_refresh(session, store, [vera_first, ava_paid, ned_again])
    assert touched == 3
    # Events arrived without an order (Ned's and Ava's): refresh everybody's contact hour the way
    # a periodic job would, then score from the kept aggregates.
    refresh_customer_aggregates(session, store.id, ids.values())
    score_from_aggregates(session, store, as_of=AS_OF)
    incremental = _stored_scores(session, store)
    full = _full_scores(session, store)
    assert incremental == full
    vera = next(row for row in full if row["customer_id"] == ids["Vera"])
    assert vera["net_revenue"] == (6600 - 100) * 10_000
    ava = next(row for row in full if row["customer_id"] == ids["Ava"])
    assert ava["order_count"] == 2


def test_refreshed_aggregates_equal_a_rebuild(
    session: Session,
    store: Store,
    frozen_clock: FrozenClock,  # noqa: F811
) -> None:
    orders = fixture_orders()
    for start in range(0, len(orders), 4):
        _upsert_and_refresh(session, store, orders[start : start + 4])
    kept = repository.store_aggregates(session, store.id)
    kept_categories = repository.store_category_aggregates(session, store.id)
    rebuild_aggregates(session, store)
    assert repository.store_aggregates(session, store.id) == kept
    assert repository.store_category_aggregates(session, store.id) == kept_categories
    chad = next(row for row in kept if row["order_count"] == 2 and row["net_revenue"] == 130)
    assert chad["gross_revenue"] == 240


def test_merged_customers_lose_their_aggregates(
    session: Session,
    store: Store,
    frozen_clock: FrozenClock,  # noqa: F811
) -> None:
    _upsert_and_refresh(session, store, fixture_orders()[:7])
    ned, vera = (
        session.scalar(
            select(Customer.id).where(
                Customer.store_id == store.id, Customer.email == f"{name}@example.com"
            )
        )
        for name in ("ned", "vera")
    )
    assert ned is not None and vera is not None
    session.execute(update(Customer).where(Customer.id == ned).values(merged_into_id=vera))
    refresh_customer_aggregates(session, store.id, [ned, None])
    kept = {row["customer_id"] for row in repository.store_aggregates(session, store.id)}
    assert ned not in kept and vera in kept


def test_refreshing_nobody_does_nothing(session: Session, store: Store) -> None:
    assert refresh_customer_aggregates(session, store.id, []) == 0
    assert refresh_customer_aggregates(session, store.id, [None]) == 0


def test_a_new_order_moves_the_time_forward(
    session: Session,
    store: Store,
    frozen_clock: FrozenClock,  # noqa: F811
) -> None:
    _upsert_and_refresh(session, store, fixture_orders()[:6])
    frozen_clock.advance(timedelta(days=1))
    later = replace(fixture_orders()[0], external_id="V9", placed_at=at(2026, 7, 1))
    _upsert_and_refresh(session, store, [later])
    summary = score_from_aggregates(session, store, as_of=AS_OF + timedelta(days=1))
    assert summary.counts["lifecycle_stage"] == {"repeat": 1}
    stored = repository.store_scores(session, store.id)
    assert stored[0]["order_count"] == 7 and stored[0]["recency_days"] == 1
