"""How DuckDB holds the exported rows: order statuses as an ENUM, same answers as plain text."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import ibis
import pyarrow as pa
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from patronage.analytics import repository
from patronage.analytics.engines import DuckDBEngine, arrow_table, export_store_tables
from patronage.analytics.scoring import REVENUE_STATUSES, SCHEMAS, revenue_orders
from patronage.customers.models import Customer
from patronage.db.base import table_of
from patronage.orders.models import Order
from patronage.stores.service import create_store
from patronage.tracking.models import Event
from tests.analytics.analytics_fixture import FixtureStore
from tests.analytics.test_scoring import fixture_store, frozen_clock  # noqa: F401 - fixtures

STATUSES = ["paid", "placed", None, "o'dd", "refunded", "cancelled", "returned", "delivered"]


def _tables() -> dict[str, pa.Table]:
    placed = datetime(2026, 1, 1)
    orders = [
        (index + 1, 1, 10 + index, status, "DE", 100_000, 0, placed)
        for index, status in enumerate(STATUSES)
    ]
    customers = [(10 + index, 1, None, "UTC") for index in range(len(STATUSES))]
    return {
        "orders": arrow_table(SCHEMAS["orders"], orders),
        "customers": arrow_table(SCHEMAS["customers"], customers),
    }


def test_statuses_are_an_enum_in_text_order() -> None:
    engine = DuckDBEngine(_tables())
    try:
        kind = engine.connection.con.sql(
            "SELECT data_type FROM information_schema.columns "
            "WHERE table_name = 'orders' AND column_name = 'status'"
        ).fetchall()[0][0]
        labels = sorted(status for status in STATUSES if status is not None)
        assert (
            kind
            == "ENUM(" + ", ".join("'" + label.replace("'", "''") + "'" for label in labels) + ")"
        )
        assert engine.table("orders").schema()["status"].is_string()
    finally:
        engine.close()


def test_paid_orders_are_the_same_with_the_enum() -> None:
    engine = DuckDBEngine(_tables())
    try:
        revenue = revenue_orders(engine.sources(with_lines=False, with_events=False), 1)
        selected = sorted(engine.to_arrow(revenue).column("order_id").to_pylist())
        expected = [
            index + 1 for index, status in enumerate(STATUSES) if status in REVENUE_STATUSES
        ]
        assert selected == expected
        plain = ibis.duckdb.connect()
        plain.con.register("orders", _tables()["orders"])
        assert plain.table("orders").filter(
            plain.table("orders").status.isin(REVENUE_STATUSES)
        ).count().to_pyarrow().as_py() == len(expected)
    finally:
        engine.close()


def test_the_export_reads_what_the_database_holds(
    session: Session,
    fixture_store: FixtureStore,  # noqa: F811
) -> None:
    store = fixture_store.store
    awkward = ["", 'a,"b"\nc', None]  # empty text, CSV quoting and a newline, NULL
    session.execute(
        insert(table_of(Event)),
        [
            {
                "store_id": store.id,
                "message_id": f"awkward{index}",
                "type": "track",
                "name": "Page Viewed",
                "customer_id": None,
                "anonymous_id": value,
                "occurred_at": datetime(2026, 6, 1, 8, 30, 15, 123456, tzinfo=UTC),
                "received_at": datetime(2026, 6, 1, 8, 30, 15, tzinfo=UTC),
                "source": "test",
                "properties": {},
                "context": {},
            }
            for index, value in enumerate(awkward)
        ],
    )
    exported = export_store_tables(session, store.id)
    for name, model in (("orders", Order), ("customers", Customer), ("events", Event)):
        columns = list(SCHEMAS[name].names)
        rows = session.execute(
            select(*(getattr(model, column) for column in columns)).where(
                model.store_id == store.id
            )
        ).all()
        expected = sorted((tuple(_plain(value) for value in row) for row in rows), key=repr)
        table = exported[name]
        got = sorted(
            zip(*(table.column(column).to_pylist() for column in columns), strict=True), key=repr
        )
        assert got == expected, name
    anonymous = exported["events"].column("anonymous_id").to_pylist()
    assert "" in anonymous and 'a,"b"\nc' in anonymous and None in anonymous


def test_an_empty_store_exports_empty_tables(session: Session) -> None:
    store = create_store(
        session, name="Empty", base_currency="USD", timezone="UTC", markets=[]
    ).store
    exported = export_store_tables(session, store.id)
    for name, table in exported.items():
        assert table.num_rows == 0
        assert table.schema == SCHEMAS[name].to_pyarrow()


def _plain(value: object) -> object:
    """ORM values as the export gives them: naive UTC times, integer money units."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, Decimal):
        return int(value.scaleb(4))
    return value


def test_arrow_rows_are_stored_as_the_orm_stores_them(
    session: Session,
    fixture_store: FixtureStore,  # noqa: F811
) -> None:
    customer_id = fixture_store.ids["Vera"]
    row = {
        "customer_id": customer_id,
        "order_count": 3,
        "first_order_at": datetime(2026, 1, 2, 3, 4, 5, 678901),
        "last_order_at": None,
        "recency_days": 12,
        "gross_revenue": 1_234_567,  # 123.4567 in money units
        "net_revenue": 0,
        "average_order_value": None,
        "recency_score": 5,
        "frequency_score": None,
        "monetary_score": 1,
        "rfm_segment": "Can't Lose",
        "lifecycle_stage": "repeat",
        "average_repurchase_interval_days": 1 / 3,
        "expected_next_order_date": date(2026, 2, 1),
        "orders_per_year": None,
        "is_vip": True,
        "preferred_category_1": "",
        "preferred_category_2": 'a,"b"\nc',
        "preferred_category_3": None,
        "best_contact_hour": 0,
    }
    inferred = pa.Table.from_pylist([row])
    arrow = inferred.cast(
        pa.schema(
            pa.field(field.name, pa.timestamp("us")) if field.name.endswith("_at") else field
            for field in inferred.schema
        )
    )
    stamp = datetime(2026, 7, 1, 12, tzinfo=UTC)
    repository.delete_store_rows(session, repository.scores_table, fixture_store.store.id)
    repository.insert_arrow(
        session, repository.scores_table, arrow, {"computed_at": stamp, "as_of": stamp}
    )
    session.expire_all()
    stored = repository.score_of_customer(session, fixture_store.store.id, customer_id)
    assert stored is not None
    assert stored.first_order_at == datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert stored.last_order_at is None
    assert stored.computed_at == stamp
    assert stored.gross_revenue == Decimal("123.4567")
    assert stored.average_order_value is None
    assert stored.average_repurchase_interval_days == 1 / 3
    assert stored.expected_next_order_date == date(2026, 2, 1)
    assert stored.is_vip is True
    assert stored.frequency_score is None
    assert stored.rfm_segment == "Can't Lose"
    assert stored.preferred_category_1 == ""
    assert stored.preferred_category_2 == 'a,"b"\nc'
    assert stored.preferred_category_3 is None
