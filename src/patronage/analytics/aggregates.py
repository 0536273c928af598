"""Per-customer aggregates kept up to date as orders arrive, so that rescoring is cheap.

`refresh_customer_aggregates` recomputes the `customer_aggregates` and
`customer_category_aggregates` rows of the customers whose orders (or events) just changed, with
the same Ibis definitions a full rebuild uses, restricted to those customers and run inside the
database. Scoring from the kept aggregates (`service.score_from_aggregates`) then reads one row
per customer instead of every order, and gives exactly what a full recomputation gives.

Compiling the Ibis expressions takes a few hundred milliseconds, too long for every webhook, so
each statement is compiled once per dialect and time-zone set with marker values in place of the
store and the customer ids, and runs afterwards as a statement with bound parameters.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import TextClause

from patronage.analytics import repository
from patronage.analytics.engines import DatabaseEngine
from patronage.analytics.scoring import (
    AGGREGATE_COLUMNS,
    CATEGORY_COLUMNS,
    SCHEMAS,
    Sources,
    aggregate_rows,
    category_rows,
)
from patronage.analytics.service import store_zone_offsets
from patronage.db.conflicts import retry_on_conflict
from patronage.db.types import UTCDateTime
from patronage.kit.clock import utcnow
from patronage.stores.service import get_store

REFRESH_CHUNK = 1_000
_STORE_MARKER = 7_340_032_101
_IDS_MARKERS = (7_340_032_102, 7_340_032_103)


def refresh_customer_aggregates(
    session: Session, store_id: int, customer_ids: Iterable[int | None]
) -> int:
    """Recompute the kept aggregates of `customer_ids` (merged or order-less ones are dropped).

    Returns how many customers were refreshed. Call it in the unit of work that changed their
    orders, after the change (orders.service.upsert_orders does, at its end).
    """
    wanted = sorted({customer_id for customer_id in customer_ids if customer_id is not None})
    if not wanted:
        return 0
    store = get_store(session, store_id)
    moment = utcnow()
    offsets, default = store_zone_offsets(session, store, moment)
    dialect = DatabaseEngine(session).dialect
    aggregates_sql, categories_sql = _refresh_statements(
        dialect, tuple(sorted(offsets.items())), default
    )
    for chunk in repository.chunks(wanted, REFRESH_CHUNK):
        ids = list(chunk)

        def refresh(ids: list[int] = ids) -> None:
            repository.delete_customer_rows(session, repository.aggregates_table, store_id, ids)
            repository.delete_customer_rows(session, repository.categories_table, store_id, ids)
            parameters = {"store_id": store_id, "customer_ids": ids, "refreshed_at": moment}
            session.execute(aggregates_sql, parameters)
            session.execute(categories_sql, {"store_id": store_id, "customer_ids": ids})

        # Two transactions refreshing one customer at once: on PostgreSQL the later insert waits
        # for the earlier commit and fails on the key; run again, it then replaces those rows.
        retry_on_conflict(session, refresh)
    return len(wanted)


@lru_cache(maxsize=64)
def _refresh_statements(
    dialect: str, offsets: tuple[tuple[str, int], ...], default_offset: int
) -> tuple[TextClause, TextClause]:
    """Compile the two refresh INSERT … SELECT statements once, with bound parameters."""
    import ibis

    sources = Sources(
        orders=ibis.table(SCHEMAS["orders"], name="orders"),
        customers=ibis.table(SCHEMAS["customers"], name="customers"),
        lines=ibis.table(SCHEMAS["order_lines"], name="order_lines"),
        events=ibis.table(SCHEMAS["events"], name="events"),
    )
    aggregates = aggregate_rows(
        sources, _STORE_MARKER, dict(offsets), default_offset, customer_ids=_IDS_MARKERS
    )
    categories = category_rows(sources, _STORE_MARKER, customer_ids=_IDS_MARKERS)
    aggregates_statement = _parameterised(
        "customer_aggregates", [*AGGREGATE_COLUMNS, "refreshed_at"],
        f"SELECT scored.*, :refreshed_at FROM ({_sql(aggregates, dialect)}) AS scored",
    )  # fmt: skip
    aggregates_statement = aggregates_statement.bindparams(
        bindparam("refreshed_at", type_=UTCDateTime())
    )
    categories_statement = _parameterised(
        "customer_category_aggregates", list(CATEGORY_COLUMNS), _sql(categories, dialect)
    )
    return aggregates_statement, categories_statement


def _sql(expression: Any, dialect: str) -> str:
    import ibis

    return str(ibis.to_sql(expression, dialect=dialect))


def _parameterised(target: str, columns: list[str], select_sql: str) -> TextClause:
    markers = ", ".join(str(marker) for marker in _IDS_MARKERS)
    if f"({markers})" not in select_sql or str(_STORE_MARKER) not in select_sql:
        raise AssertionError("the compiled refresh statement lost its parameter markers")
    sql = select_sql.replace(f"({markers})", ":customer_ids").replace(
        str(_STORE_MARKER), ":store_id"
    )
    statement = text(f"INSERT INTO {target} ({', '.join(columns)}) {sql}")
    return statement.bindparams(bindparam("customer_ids", expanding=True))
