"""All SQL of orders, lines, status changes, refunds, exchange rates and products-by-sku."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal
from operator import itemgetter
from typing import Any, NamedTuple

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from patronage.catalog.models import Product
from patronage.db.base import table_of
from patronage.db.bulk import bulk_insert, bulk_insert_ignoring_conflicts, select_rows
from patronage.db.ids import allocate_ids
from patronage.orders.models import ExchangeRate, Order, OrderLine, OrderStatusChange, Refund

_CHUNK = 500
orders_table = table_of(Order)
lines_table = table_of(OrderLine)
changes_table = table_of(OrderStatusChange)
refunds_table = table_of(Refund)
products_table = table_of(Product)


def _columns_without_id(table: Any) -> tuple[str, ...]:
    return tuple(column.name for column in table.c if column.name != "id")


# Bulk inserts take each row as a dict holding these columns (new orders also get their `id`).
ORDER_COLUMNS = (*_columns_without_id(orders_table), "id")
LINE_COLUMNS = _columns_without_id(lines_table)
CHANGE_COLUMNS = ("store_id", "order_id", "status", "occurred_at", "details")
REFUND_COLUMNS = _columns_without_id(refunds_table)
PRODUCT_COLUMNS = ("store_id", "sku", "title", "category", "price", "currency", "created_at",
                   "updated_at")  # fmt: skip
_order_values = itemgetter(*ORDER_COLUMNS)
_line_values = itemgetter(*LINE_COLUMNS)
_change_values = itemgetter(*CHANGE_COLUMNS)
_refund_values = itemgetter(*REFUND_COLUMNS)
_product_values = itemgetter(*PRODUCT_COLUMNS)


class OrderState(NamedTuple):
    """What a replay needs to know of a stored order to tell whether it changed."""

    id: int
    content_hash: str
    customer_id: int | None


def _chunks(values: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def all_rates(session: Session, store_id: int) -> list[tuple[str, date, Decimal]]:
    """Return every exchange rate of the store, by currency and date."""
    rows = session.execute(
        select(ExchangeRate.currency, ExchangeRate.rate_date, ExchangeRate.rate)
        .where(ExchangeRate.store_id == store_id)
        .order_by(ExchangeRate.currency, ExchangeRate.rate_date)
    )
    return [(currency, rate_date, rate) for currency, rate_date, rate in rows]


def upsert_rate(
    session: Session, *, store_id: int, currency: str, rate_date: date, rate: Decimal, source: str
) -> None:
    """Insert or replace one dated rate."""
    table = table_of(ExchangeRate)
    session.execute(
        delete(table).where(
            table.c.store_id == store_id,
            table.c.currency == currency,
            table.c.rate_date == rate_date,
        )
    )
    session.execute(
        insert(table).values(
            store_id=store_id, currency=currency, rate_date=rate_date, rate=rate, source=source
        )
    )


def find_orders(
    session: Session, store_id: int, source: str, external_ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Return stored orders of one source by external id, locked until the transaction ends.

    The lock (FOR UPDATE; SQLite's writers are serialised anyway) makes a concurrent upsert of the
    same order wait and then read this one's result, instead of overwriting it with a merge of
    what it read before.
    """
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(sorted(set(external_ids))):
        rows = session.execute(
            select(orders_table)
            .where(
                orders_table.c.store_id == store_id,
                orders_table.c.source == source,
                orders_table.c.external_id.in_(chunk),
            )
            .with_for_update()
        ).mappings()
        for row in rows:
            found[row["external_id"]] = dict(row)
    return found


def order_states(
    session: Session, store_id: int, source: str, external_ids: Sequence[str]
) -> dict[str, OrderState]:
    """Return id, fingerprint and customer of stored orders by external id (locked: find_orders)."""
    rows = select_rows(
        session, orders_table, ("external_id", "id", "content_hash", "customer_id"),
        where={"store_id": store_id, "source": source}, key="external_id",
        values=sorted(set(external_ids)), for_update=True,
    )  # fmt: skip
    return {external_id: OrderState(*state) for external_id, *state in rows}


def orders_by_id(session: Session, order_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Return stored orders as column dicts, by id."""
    found: dict[int, dict[str, Any]] = {}
    for chunk in _chunks(sorted(set(order_ids))):
        rows = session.execute(select(orders_table).where(orders_table.c.id.in_(chunk)))
        for row in rows.mappings():
            found[row["id"]] = dict(row)
    return found


def refund_totals(
    session: Session, order_ids: Sequence[int]
) -> dict[int, tuple[Decimal, set[str]]]:
    """Return, per order, the sum of its stored refunds and their external ids."""
    totals: dict[int, tuple[Decimal, set[str]]] = {}
    rows = select_rows(
        session, refunds_table, ("order_id", "external_id", "amount"), where={},
        key="order_id", values=sorted(set(order_ids)),
    )  # fmt: skip
    for order_id, external_id, amount in rows:
        total, ids = totals.get(order_id, (Decimal(0), set()))
        ids.add(external_id)
        totals[order_id] = (total + amount, ids)
    return totals


def insert_orders(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Insert orders in bulk, setting each row's new `id`; return the ids in input order."""
    if not rows:
        return []
    ids = allocate_ids(session, orders_table, len(rows))
    for row, order_id in zip(rows, ids, strict=True):
        row["id"] = order_id
    bulk_insert(session, orders_table, ORDER_COLUMNS, list(map(_order_values, rows)))
    return ids


def update_orders(session: Session, rows: list[dict[str, Any]]) -> None:
    """Update orders in bulk; each row holds `id` and every column to set."""
    if rows:
        session.execute(update(Order), rows)


def replace_lines(session: Session, order_ids: Sequence[int], rows: list[dict[str, Any]]) -> None:
    """Delete the lines of these orders and insert `rows` instead."""
    for chunk in _chunks(list(order_ids)):
        session.execute(delete(lines_table).where(lines_table.c.order_id.in_(chunk)))
    insert_lines(session, rows)


def insert_lines(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert line rows in bulk."""
    if rows:
        bulk_insert(session, lines_table, LINE_COLUMNS, list(map(_line_values, rows)))


def insert_status_changes(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert timeline steps known to be new (those of new orders, without repeats)."""
    if rows:
        bulk_insert(session, changes_table, CHANGE_COLUMNS, list(map(_change_values, rows)))


def add_status_changes(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert timeline steps, skipping those already recorded."""
    if rows:
        bulk_insert_ignoring_conflicts(
            session, changes_table, CHANGE_COLUMNS, list(map(_change_values, rows)),
            keys=("order_id", "status", "occurred_at"),
        )  # fmt: skip


def insert_refunds(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert refunds known to be new (those of new orders, without repeats)."""
    if rows:
        bulk_insert(session, refunds_table, REFUND_COLUMNS, list(map(_refund_values, rows)))


def add_refunds(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert refunds, skipping those already recorded."""
    if rows:
        bulk_insert_ignoring_conflicts(
            session, refunds_table, REFUND_COLUMNS, list(map(_refund_values, rows)),
            keys=("order_id", "external_id"),
        )  # fmt: skip


def products_by_sku(
    session: Session, store_id: int, skus: Iterable[str]
) -> dict[str, tuple[int, str | None]]:
    """Return (product id, category) by SKU."""
    found: dict[str, tuple[int, str | None]] = {}
    for chunk in _chunks(sorted(set(skus))):
        rows = session.execute(
            select(Product.sku, Product.id, Product.category).where(
                Product.store_id == store_id, Product.sku.in_(chunk)
            )
        )
        for sku, product_id, category in rows:
            found[sku] = (product_id, category)
    return found


def insert_products(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert products, skipping SKUs that already exist."""
    if rows:
        bulk_insert_ignoring_conflicts(
            session, products_table, PRODUCT_COLUMNS, list(map(_product_values, rows)),
            keys=("store_id", "sku"),
        )  # fmt: skip


def get_order(session: Session, store_id: int, order_id: int) -> Order | None:
    """Return one order of the store."""
    return session.scalars(
        select(Order).where(Order.store_id == store_id, Order.id == order_id)
    ).first()


def orders_of_customer(
    session: Session, store_id: int, customer_id: int, limit: int
) -> list[Order]:
    """Return a customer's orders, newest first."""
    return list(
        session.scalars(
            select(Order)
            .where(Order.store_id == store_id, Order.customer_id == customer_id)
            .order_by(Order.placed_at.desc(), Order.id.desc())
            .limit(limit)
        )
    )


def lines_of(session: Session, order_ids: Sequence[int]) -> dict[int, list[OrderLine]]:
    """Return the lines of these orders, by order id."""
    grouped: dict[int, list[OrderLine]] = {}
    for chunk in _chunks(list(order_ids)):
        for line in session.scalars(
            select(OrderLine).where(OrderLine.order_id.in_(chunk)).order_by(OrderLine.line_number)
        ):
            grouped.setdefault(line.order_id, []).append(line)
    return grouped


def timelines_of(session: Session, order_ids: Sequence[int]) -> dict[int, list[OrderStatusChange]]:
    """Return the status timelines of these orders, by order id, oldest step first."""
    grouped: dict[int, list[OrderStatusChange]] = {}
    for chunk in _chunks(list(order_ids)):
        for change in session.scalars(
            select(OrderStatusChange)
            .where(OrderStatusChange.order_id.in_(chunk))
            .order_by(OrderStatusChange.occurred_at, OrderStatusChange.id)
        ):
            grouped.setdefault(change.order_id, []).append(change)
    return grouped


def refunds_of(session: Session, order_ids: Sequence[int]) -> dict[int, list[Refund]]:
    """Return the refunds of these orders, by order id."""
    grouped: dict[int, list[Refund]] = {}
    for chunk in _chunks(list(order_ids)):
        for refund in session.scalars(
            select(Refund).where(Refund.order_id.in_(chunk)).order_by(Refund.refunded_at)
        ):
            grouped.setdefault(refund.order_id, []).append(refund)
    return grouped


def count_orders(session: Session, store_id: int) -> int:
    """Return how many orders the store has."""
    return session.scalar(select(func.count()).where(orders_table.c.store_id == store_id)) or 0


def customers_of_orders(session: Session, store_id: int, order_ids: Sequence[int]) -> set[int]:
    """Return the distinct customers of these orders."""
    rows = select_rows(
        session, orders_table, ("customer_id",), where={"store_id": store_id}, key="id",
        values=sorted(set(order_ids)),
    )  # fmt: skip
    return {customer_id for (customer_id,) in rows if customer_id is not None}
