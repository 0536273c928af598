"""Selective rescoring: only the customers whose inputs changed, identical to a full rescoring."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import ibis
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from patronage.analytics import repository
from patronage.analytics.engines import DuckDBEngine, export_store_tables
from patronage.analytics.scoring import (
    QuintileBounds,
    ScoringSettings,
    aggregate_rows,
    bound_positions,
    buyer_measures,
    category_rows,
    crossing_buyers,
    crossing_ids,
    moved_bounds,
    quintile_bounds,
    score_rows,
)
from patronage.analytics.service import (
    rebuild_aggregates,
    rescore_customers,
    score_from_aggregates,
)
from patronage.kit.clock import FrozenClock
from patronage.orders.models import Order
from patronage.orders.schemas import OrderIn, RefundIn
from patronage.orders.service import upsert_orders
from patronage.stores.models import Store
from tests.analytics.analytics_fixture import AS_OF, at, build_fixture_store, fixture_orders
from tests.analytics.test_aggregates import _full_scores, _stored_scores
from tests.analytics.test_scoring import frozen_clock  # noqa: F401 - fixture


def _scored_store(session: Session, store: Store) -> dict[str, int]:
    ids = build_fixture_store(session, store).ids
    rebuild_aggregates(session, store, zones_at=AS_OF)
    score_from_aggregates(session, store, as_of=AS_OF)
    return ids


def _upsert(session: Session, store: Store, orders: list[OrderIn]) -> list[int]:
    summary = upsert_orders(session, store, orders)
    return list(
        session.scalars(select(Order.customer_id).where(Order.id.in_(summary.order_ids))).all()
    )


def test_bound_positions_are_the_quintile_thresholds() -> None:
    """Position of the m-th worst value, m = ⌈(k - 1)·n/5⌉ for k = 2..5."""
    assert bound_positions(0) == []
    assert bound_positions(1) == [0, 0, 0, 0]
    assert bound_positions(6) == [1, 2, 3, 4]
    assert bound_positions(10) == [1, 3, 5, 7]


def test_bounds_read_scores_equal_to_ranking_every_buyer() -> None:
    """1 + the bounds a value beats equals 1 + ⌊5 · worse / n⌋, ties included."""
    import numpy as np

    rng = np.random.default_rng(3)
    for size, spread in ((1, 12), (2, 12), (5, 12), (7, 12), (31, 12), (200, 12), (300, 10**9)):
        values = rng.integers(-spread, spread, size=size)
        values[: size // 3] = values[0]  # ties
        bounds = quintile_bounds(
            {"recency_days": values, "order_count": values, "net_revenue": values}
        )
        for value in values:
            worse_ascending = int((values < value).sum())
            worse_descending = int((values > value).sum())
            expected_up = 1 + worse_ascending * 5 // size
            expected_down = 1 + worse_descending * 5 // size
            assert 1 + sum(value > bound for bound in bounds.net_revenue) == expected_up
            assert 1 + sum(value < bound for bound in bounds.recency_days) == expected_down


def test_a_refund_that_moves_no_bound_rescores_only_some_customers(
    session: Session,
    store: Store,
    frozen_clock: FrozenClock,  # noqa: F811
) -> None:
    ids = _scored_store(session, store)
    vera_first = replace(
        fixture_orders()[0], refunds=[RefundIn("V0-R", Decimal("100"), at(2026, 4, 20))]
    )
    touched = _upsert(session, store, [vera_first])
    summary = rescore_customers(session, store.id, touched, as_of=AS_OF)
    assert summary.mode == "selective", summary.reason
    assert summary.rescored is not None and 1 <= summary.rescored < summary.customers
    assert _stored_scores(session, store) == _full_scores(session, store)
    vera = next(row for row in _stored_scores(session, store) if row["customer_id"] == ids["Vera"])
    assert vera["net_revenue"] == (6600 - 100) * 10_000


def test_a_new_buyer_moves_the_bounds_and_the_buyers_crossing_them_are_rescored(
    session: Session,
    store: Store,
    frozen_clock: FrozenClock,  # noqa: F811
) -> None:
    _scored_store(session, store)
    before = repository.score_run(session, store.id)
    assert before is not None
    old_bounds = QuintileBounds.from_dict(before.bounds)
    newcomer = replace(
        fixture_orders()[7],
        external_id="Z1",
        customer=replace(fixture_orders()[7].customer, email="zed@example.com"),  # type: ignore[type-var]
        placed_at=at(2026, 6, 30),
        paid_at=at(2026, 6, 30),
    )
    touched = _upsert(session, store, [newcomer])
    summary = rescore_customers(session, store.id, touched, as_of=AS_OF)
    run = repository.score_run(session, store.id)
    assert run is not None and QuintileBounds.from_dict(run.bounds) != old_bounds
    assert summary.mode == "selective", summary.reason
    assert "crossed a moved quintile bound" in summary.reason
    assert _stored_scores(session, store) == _full_scores(session, store)


def test_without_a_record_of_the_inputs_rescoring_is_full(
    session: Session,
    store: Store,
    frozen_clock: FrozenClock,  # noqa: F811
) -> None:
    ids = _scored_store(session, store)
    repository.forget_score_run(session, store.id)
    summary = rescore_customers(session, store.id, [ids["Vera"]], as_of=AS_OF)
    assert summary.mode == "full" and "no record" in summary.reason
    assert _stored_scores(session, store) == _full_scores(session, store)


def test_a_new_as_of_rescoring_is_full(
    session: Session,
    store: Store,
    frozen_clock: FrozenClock,  # noqa: F811
) -> None:
    _scored_store(session, store)
    summary = rescore_customers(session, store.id, [], as_of=AS_OF + timedelta(days=1))
    assert summary.mode == "full" and "as-of" in summary.reason


def test_on_duckdb_scoring_some_customers_with_bounds_equals_ranking_everyone(
    session: Session,
    store: Store,
    frozen_clock: FrozenClock,  # noqa: F811
) -> None:
    """The same definitions on DuckDB: bounds from NumPy, a subset scored, equal rows."""
    build_fixture_store(session, store)
    engine = DuckDBEngine(export_store_tables(session, store.id))
    try:
        sources = engine.sources()
        raw = engine.connection.con
        for name, expression in (
            ("customer_aggregates", aggregate_rows(sources, store.id, {}, 0)),
            ("customer_category_aggregates", category_rows(sources, store.id)),
        ):
            raw.register(f"arrow_{name}", engine.to_arrow(expression))
            raw.execute(f'CREATE TABLE "{name}" AS SELECT * FROM "arrow_{name}"')
        customers = engine.table("customers")
        aggregates = engine.table("customer_aggregates")
        categories = engine.table("customer_category_aggregates")
        bounds = engine.quintile_bounds(buyer_measures(customers, store.id, aggregates, AS_OF))
        assert isinstance(bounds, QuintileBounds) and bounds.buyers == 6
        common: dict[str, Any] = {"as_of": AS_OF, "settings": ScoringSettings()}
        everyone = engine.fetch(score_rows(customers, store.id, aggregates, categories, **common))
        some_ids = sorted(row["customer_id"] for row in everyone)[::2]
        some = engine.fetch(
            score_rows(
                customers, store.id, aggregates, categories, bounds=bounds,
                customer_ids=some_ids, **common,
            )
        )  # fmt: skip
        expected = [row for row in everyone if row["customer_id"] in some_ids]
        key = lambda row: row["customer_id"]  # noqa: E731
        assert sorted(some, key=key) == sorted(expected, key=key)
        with pytest.raises(ValueError, match="bounds"):
            score_rows(customers, store.id, aggregates, categories, customer_ids=[1], **common)
    finally:
        engine.close()


def test_crossing_buyers_in_sql_and_numpy_agree() -> None:
    """The buyers between moved bounds: the Ibis definition (on DuckDB) and the NumPy one."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(5)
    size = 500
    measures = pa.table(
        {
            "customer_id": np.arange(1, size + 1, dtype=np.int64),
            "recency_days": rng.integers(0, 400, size=size),
            "order_count": rng.integers(1, 9, size=size),
            "net_revenue": rng.integers(1, 10**7, size=size),
        }
    )
    old = quintile_bounds(
        {name: measures.column(name).to_numpy() for name in measures.column_names}
    )
    changed = measures.set_column(
        3, "net_revenue", pa.array(measures.column("net_revenue").to_numpy() // 2)
    )
    arrays = {name: changed.column(name).to_numpy() for name in changed.column_names}
    new = quintile_bounds(arrays)
    low, high = moved_bounds(old, new)
    assert low != high
    from_numpy = sorted(int(value) for value in crossing_ids(arrays, low, high))
    connection = ibis.duckdb.connect()
    try:
        connection.con.register("arrow_measures", changed)
        connection.con.execute("CREATE TABLE measures AS SELECT * FROM arrow_measures")
        table = connection.table("measures")
        from_sql = sorted(
            int(value) for value in crossing_buyers(table, low, high).to_pyarrow()["customer_id"]
        )
    finally:
        connection.disconnect()
    assert from_numpy == from_sql and from_numpy
