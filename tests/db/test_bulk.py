"""Bulk inserts store exactly what the ORM would, and bulk look-ups read it back the same way."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from patronage.catalog.models import Product
from patronage.customers.models import Customer
from patronage.db import bulk
from patronage.db.base import table_of
from patronage.db.bulk import bulk_insert, bulk_insert_ignoring_conflicts, select_rows
from patronage.db.ids import allocate_ids
from patronage.orders.models import Refund
from patronage.orders.schemas import OrderIn
from patronage.orders.service import upsert_orders
from patronage.stores.models import Store

AT = datetime(2026, 6, 24, 17, 28, 34, 120000, tzinfo=UTC)
customers = table_of(Customer)
products = table_of(Product)
refunds = table_of(Refund)
CUSTOMER_COLUMNS = ("id", "store_id", "email", "birthday", "tags", "attributes", "first_seen_at",
                    "created_at", "updated_at")  # fmt: skip
PRODUCT_COLUMNS = ("store_id", "sku", "title", "price", "margin", "created_at", "updated_at")


def _customer_values(store: Store, email: str) -> dict[str, Any]:
    return {
        "store_id": store.id,
        "email": email,
        "birthday": date(1990, 2, 3),
        "tags": ["vip", "früh"],
        "attributes": {"note": "leave at the door", "size": {"shirt": "M"}},
        # Another zone and an offset of whole minutes: stored as naive UTC either way.
        "first_seen_at": AT.astimezone(timezone(timedelta(hours=5, minutes=30))),
        "created_at": AT,
        "updated_at": AT,
    }


def _raw(session: Session, customer_id: int) -> tuple[Any, ...]:
    columns = ", ".join(name for name in CUSTOMER_COLUMNS if name not in ("id", "email"))
    row = session.connection().exec_driver_sql(
        f"SELECT {columns} FROM customers WHERE id = {int(customer_id)}"
    )
    return tuple(row.one())


def test_a_bulk_row_is_stored_as_the_orm_stores_it(session: Session, store: Store) -> None:
    by_orm = Customer(**_customer_values(store, "orm@example.com"))
    session.add(by_orm)
    session.flush()
    (new_id,) = allocate_ids(session, customers, 1)
    values = {"id": new_id, **_customer_values(store, "bulk@example.com")}

    bulk_insert(session, customers, CUSTOMER_COLUMNS, [[values[name] for name in CUSTOMER_COLUMNS]])

    # Byte for byte on SQLite (text timestamps and JSON), value for value on PostgreSQL.
    assert _raw(session, new_id) == _raw(session, by_orm.id)
    by_bulk = session.get(Customer, new_id)
    assert by_bulk is not None
    assert by_bulk.first_seen_at == AT and by_bulk.first_seen_at.tzinfo is not None
    assert (by_bulk.birthday, by_bulk.tags, by_bulk.attributes) == (
        by_orm.birthday, by_orm.tags, by_orm.attributes,
    )  # fmt: skip


def test_money_and_rates_keep_every_digit(session: Session, store: Store) -> None:
    bulk_insert(session, products, PRODUCT_COLUMNS, [
        (store.id, "TEA", "Tea", Decimal("12.3456"), Decimal("0.1234567891"), AT, AT),
        (store.id, "CUP", "Cup", 7, None, AT, AT),
    ])  # fmt: skip

    stored = {
        product.sku: (product.price, product.margin)
        for product in session.scalars(select(Product).where(Product.store_id == store.id))
    }
    assert stored == {"TEA": (Decimal("12.3456"), Decimal("0.1234567891")), "CUP": (7, None)}


@pytest.mark.parametrize(
    ("price", "created_at", "cause"),
    [
        (Decimal("1.00001"), AT, "more than 4 decimal places"),
        (Decimal("1.00"), AT.replace(tzinfo=None), "naive datetime"),
    ],
)
def test_a_value_the_column_cannot_hold_is_a_statement_error(
    session: Session, store: Store, price: Decimal, created_at: datetime, cause: str
) -> None:
    with pytest.raises(StatementError, match=cause) as raised:
        bulk_insert(session, products, PRODUCT_COLUMNS,
                    [(store.id, "TEA", "Tea", price, None, created_at, AT)])  # fmt: skip
    assert isinstance(raised.value.orig, ValueError)


def test_a_row_the_database_refuses_is_an_integrity_error(session: Session, store: Store) -> None:
    row = (store.id, "TEA", "Tea", Decimal("1.00"), None, AT, AT)
    bulk_insert(session, products, PRODUCT_COLUMNS, [row])

    savepoint = session.begin_nested()
    with pytest.raises(IntegrityError):
        bulk_insert(session, products, PRODUCT_COLUMNS, [row])
    savepoint.rollback()


def test_ignoring_conflicts_keeps_what_is_stored(session: Session, store: Store) -> None:
    bulk_insert(session, products, PRODUCT_COLUMNS,
                [(store.id, "TEA", "Tea", Decimal("1.00"), None, AT, AT)])  # fmt: skip

    bulk_insert_ignoring_conflicts(session, products, PRODUCT_COLUMNS, [
        (store.id, "TEA", "Green tea", Decimal("2.00"), None, AT, AT),
        (store.id, "CUP", "Cup", Decimal("3.00"), None, AT, AT),
    ], keys=("store_id", "sku"))  # fmt: skip

    titles = session.execute(select(Product.sku, Product.title).where(Product.store_id == store.id))
    assert {sku: title for sku, title in titles} == {"TEA": "Tea", "CUP": "Cup"}


def test_json_null_and_booleans_round_trip(session: Session, store: Store) -> None:
    placed = upsert_orders(session, store, [
        OrderIn(source="csv", external_id="1", currency="USD", placed_at=AT, total=Decimal(10))
    ])  # fmt: skip
    columns = ("store_id", "order_id", "external_id", "amount", "amount_base", "currency",
               "refunded_at", "reason", "lines", "restock")  # fmt: skip
    order_id = placed.order_ids[0]

    bulk_insert(session, refunds, columns, [
        (store.id, order_id, "r1", Decimal(4), Decimal(4), "USD", AT, None,
         [{"sku": "TEA", "quantity": 1}], True),
        (store.id, order_id, "r2", Decimal(1), Decimal(1), "USD", AT, "late", None, False),
    ])  # fmt: skip

    stored = {
        refund.external_id: (refund.lines, refund.restock)
        for refund in session.scalars(select(Refund).where(Refund.order_id == order_id))
    }
    assert stored == {"r1": ([{"sku": "TEA", "quantity": 1}], True), "r2": (None, False)}


def test_select_rows_reads_what_the_orm_reads(
    session: Session, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "_SELECT_CHUNK", 2)  # several statements
    emails = [f"c{number}@example.com" for number in range(5)]
    ids = allocate_ids(session, customers, len(emails))
    rows = [{"id": customer_id, **_customer_values(store, email)}
            for customer_id, email in zip(ids, emails, strict=True)]  # fmt: skip
    bulk_insert(session, customers, CUSTOMER_COLUMNS,
                [[row[name] for name in CUSTOMER_COLUMNS] for row in rows])  # fmt: skip

    found = select_rows(
        session, customers, CUSTOMER_COLUMNS, where={"store_id": store.id}, key="email",
        values=[*emails[1:], "nobody@example.com", emails[1]], for_update=True,
    )  # fmt: skip

    assert sorted(row[2] for row in found) == emails[1:]
    for row in found:
        customer = session.get(Customer, row[0])
        assert customer is not None
        assert row == tuple(getattr(customer, name) for name in CUSTOMER_COLUMNS)
    other_store = select_rows(session, customers, ("id",), where={"store_id": store.id + 1},
                              key="email", values=emails)  # fmt: skip
    assert other_store == []


def test_a_look_up_by_a_leading_key_probes_that_index_on_sqlite(
    session: Session, store: Store
) -> None:
    """Look-ups by customer id must not scan the store through its `store_id` index."""
    from sqlalchemy import event

    from patronage.customers.models import Consent

    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("the plan of SQLite's query planner")
    statements: list[tuple[str, Any]] = []
    connection = session.connection()

    def capture(_c: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(connection, "before_cursor_execute", capture)
    try:
        select_rows(
            session, table_of(Consent), ("customer_id", "channel"), where={"store_id": store.id},
            key="customer_id", values=[1, 2, 3],
        )  # fmt: skip
    finally:
        event.remove(connection, "before_cursor_execute", capture)
    (statement, parameters) = statements[-1]
    plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()
    details = " ".join(str(row[-1]) for row in plan)
    assert "customer_id" in details and "store_id" not in details, details
