"""All SQL of behavioural events, and the few look-ups the tracking intake needs beside them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ColumnElement,
    MetaData,
    String,
    Table,
    Text,
    any_,
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from patronage.customers.models import CustomerIdentity
from patronage.db.base import table_of
from patronage.db.bulk import bulk_insert
from patronage.orders.models import Order
from patronage.tracking.models import Event

_CHUNK = 500
events_table = table_of(Event)
identities_table = table_of(CustomerIdentity)
orders_table = table_of(Order)


def _chunks(values: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _one_of(session: Session, column: Any, values: Iterable[str]) -> ColumnElement[bool]:
    """`column IN (values)` with every value in one bound parameter, however many there are.

    SQLAlchemy expands a plain IN list into one parameter per value, which costs more than the
    query itself on the intake's hot path: SQLite reads a JSON array with `json_each`, PostgreSQL
    takes an array.
    """
    listed = sorted(set(values))
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, listed, type_=postgresql.ARRAY(String)))
    elements = func.json_each(bindparam(None, orjson.dumps(listed).decode(), type_=String))
    return column.in_(select(elements.table_valued("value").c.value))


def _driver_in(session: Session, values: Iterable[str]) -> tuple[str, str, Any]:
    """The placeholder, an `IN` clause and its one parameter for matching many strings.

    The intake's per-transaction look-ups go to the driver as plain SQL: SQLAlchemy's statement
    and result handling were about a third of their cost.
    """
    listed = sorted(set(values))
    if session.get_bind().dialect.name == "postgresql":
        return "%s", "= ANY(%s)", listed
    return "?", "IN (SELECT value FROM json_each(?))", orjson.dumps(listed).decode()


def existing_message_ids(session: Session, store_id: int, message_ids: Iterable[str]) -> set[str]:
    """Return which of these message ids the store already holds."""
    mark, membership, listed = _driver_in(session, message_ids)
    rows = session.connection().exec_driver_sql(
        f"SELECT message_id FROM {events_table.name} "
        f"WHERE store_id = {mark} AND message_id {membership}",
        (store_id, listed),
    )
    return {message_id for (message_id,) in rows}


EVENT_COLUMNS = ("store_id", "message_id", "type", "name", "customer_id", "user_id",
                 "anonymous_id", "occurred_at", "received_at", "source", "properties",
                 "context")  # fmt: skip

# The events table with its two JSON columns as text, for `insert_events`: the intake serialises
# them with orjson itself (a tenth of the cost of `json.dumps` on these nested documents); SQLite
# keeps JSON as that text, PostgreSQL casts it to jsonb. The rows read back identically through
# `Event`.
_insert_table = Table(
    events_table.name,
    MetaData(),
    *(
        Column(column.name, Text() if isinstance(column.type, JSON) else column.type)
        for column in events_table.columns
    ),
)
_JSON_POSITIONS = tuple(
    position
    for position, name in enumerate(EVENT_COLUMNS)
    if isinstance(events_table.c[name].type, JSON)
)


def insert_events(session: Session, rows: Sequence[Sequence[Any]]) -> None:
    """Insert event rows (values in EVENT_COLUMNS order) in bulk: COPY on PostgreSQL.

    The rows must hold no message id the store already has: the intake leaves out those that
    `existing_message_ids` found in the same transaction. A concurrent writer storing one of them
    meanwhile makes this fail with IntegrityError, and the intake writer runs the transaction
    again (its look-up then sees that message). COPY cannot skip conflicts, and is about a third
    faster than an `INSERT … ON CONFLICT DO NOTHING` a row.
    """
    if not rows:
        return
    dumps = orjson.dumps
    prepared = []
    for row in rows:
        values = list(row)
        for position in _JSON_POSITIONS:
            values[position] = dumps(values[position]).decode()
        prepared.append(values)
    bulk_insert(session, _insert_table, EVENT_COLUMNS, prepared)


def find_identities(
    session: Session, store_id: int, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """Map each known (kind, value) to the customer holding it, in one query."""
    wanted = set(keys)
    if not wanted:
        return {}
    kinds = sorted({kind for kind, _ in wanted})
    mark, membership, listed = _driver_in(session, (value for _, value in wanted))
    rows = session.connection().exec_driver_sql(
        f"SELECT kind, value, customer_id FROM {identities_table.name} "
        f"WHERE store_id = {mark} AND kind IN ({', '.join([mark] * len(kinds))}) "
        f"AND value {membership}",
        (store_id, *kinds, listed),
    )
    return {
        (kind, value): customer_id for kind, value, customer_id in rows if (kind, value) in wanted
    }


def link_anonymous_events(session: Session, store_id: int, links: dict[str, int]) -> None:
    """Give the store's unlinked events of each anonymous id the customer now known to own it.

    One statement for all the anonymous ids, whose customer comes from a bound JSON object
    (SQLite) or a pair of arrays (PostgreSQL).
    """
    if not links:
        return
    anonymous_ids = sorted(links)
    if session.get_bind().dialect.name == "postgresql":
        pairs = (
            func.unnest(
                bindparam(None, anonymous_ids, type_=postgresql.ARRAY(String)),
                bindparam(None, [links[key] for key in anonymous_ids],
                          type_=postgresql.ARRAY(BigInteger)),
            )
            .table_valued("anonymous_id", "customer_id")
            .render_derived(name="links")
        )  # fmt: skip
        session.execute(
            update(events_table)
            .where(
                events_table.c.store_id == store_id,
                events_table.c.customer_id.is_(None),
                events_table.c.anonymous_id == pairs.c.anonymous_id,
            )
            .values(customer_id=pairs.c.customer_id)
        )
        return
    document = bindparam(None, orjson.dumps(links).decode(), type_=String)
    owners = func.json_each(document).table_valued("key", "value").alias("owners")
    session.execute(
        update(events_table)
        .where(
            events_table.c.store_id == store_id,
            events_table.c.customer_id.is_(None),
            _one_of(session, events_table.c.anonymous_id, anonymous_ids),
        )
        .values(
            customer_id=select(owners.c.value)
            .where(owners.c.key == events_table.c.anonymous_id)
            .scalar_subquery()
        )
    )


def customers_with_user_id(
    session: Session, store_id: int, customer_ids: Iterable[int]
) -> set[int]:
    """Return which of these customers a tracking user id already belongs to."""
    found: set[int] = set()
    for chunk in _chunks(sorted(set(customer_ids))):
        found.update(
            session.scalars(
                select(identities_table.c.customer_id).where(
                    identities_table.c.store_id == store_id,
                    identities_table.c.kind == "user_id",
                    identities_table.c.customer_id.in_(chunk),
                )
            )
        )
    return found


def orders_by_external_id(
    session: Session, store_id: int, external_ids: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """Return the store's orders by external id, whatever their source.

    When several sources hold the same external id, a platform's order (Shopify, WooCommerce, …)
    is preferred to one the tracking intake created.
    """
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(sorted(set(external_ids))):
        rows = session.execute(
            select(orders_table)
            .where(orders_table.c.store_id == store_id, orders_table.c.external_id.in_(chunk))
            .order_by(orders_table.c.id)
        ).mappings()
        for row in rows:
            held = found.get(row["external_id"])
            if held is None or (held["source"] == "tracking" and row["source"] != "tracking"):
                found[row["external_id"]] = dict(row)
    return found
