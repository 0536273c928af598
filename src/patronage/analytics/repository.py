"""All SQL of the analytics domain that is not an Ibis definition: deletes, bulk writes, reads."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
from sqlalchemy import Integer, Table, and_, delete, func, insert, or_, select, text
from sqlalchemy.orm import Session

from patronage.analytics.tables import (
    CustomerAggregate,
    CustomerCategoryAggregate,
    CustomerScore,
    ScoreRun,
)
from patronage.customers.models import Customer
from patronage.db.base import table_of

_CHUNK = 500
MONEY_COLUMNS = frozenset({"gross_revenue", "net_revenue", "average_order_value"})

aggregates_table = table_of(CustomerAggregate)
categories_table = table_of(CustomerCategoryAggregate)
scores_table = table_of(CustomerScore)
customers_table = table_of(Customer)


def chunks(values: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    """Yield `values` in slices of at most `size`."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _of_store(store_id: int) -> Any:
    return select(customers_table.c.id).where(customers_table.c.store_id == store_id)


def delete_store_rows(session: Session, table: Table, store_id: int) -> None:
    """Delete the rows of a derived table that belong to the store's customers."""
    session.execute(delete(table).where(table.c.customer_id.in_(_of_store(store_id))))


def delete_customer_rows(
    session: Session, table: Table, store_id: int, customer_ids: Sequence[int]
) -> None:
    """Delete the rows of a derived table for some of the store's customers.

    The ids are first checked against the store by primary key, then the rows deleted by id: two
    look-ups that cost what the customers deleted cost, whatever the size of the store (a join
    with the store's customers lets PostgreSQL's planner read them all).
    """
    for chunk in chunks(list(customer_ids)):
        mine = list(
            session.scalars(
                select(customers_table.c.id).where(
                    customers_table.c.id.in_(list(chunk)), customers_table.c.store_id == store_id
                )
            )
        )
        if mine:
            session.execute(delete(table).where(table.c.customer_id.in_(mine)))


def refresh_statistics(session: Session, tables: Sequence[Table]) -> None:
    """Let PostgreSQL's planner see the rows just written to `tables` (ANALYZE, in the transaction).

    Scoring reads the derived tables right after rebuilding them, before autovacuum has looked:
    with the statistics of empty tables the planner expects one row and nests loops over a
    million (the plan never finishes). SQLite plans scoring without statistics.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    names = ", ".join(table.name for table in tables)
    session.execute(text(f"ANALYZE {names}"))


def insert_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Bulk-insert rows whose money columns are integer 1/10,000 units."""
    converted = [
        {
            key: Decimal(value).scaleb(-4) if key in MONEY_COLUMNS and value is not None else value
            for key, value in row.items()
        }
        for row in rows
    ]
    for chunk in chunks(converted, 5_000):
        session.execute(insert(table), list(chunk))


def insert_arrow(
    session: Session, table: Table, rows: pa.Table, constants: Mapping[str, datetime]
) -> None:
    """Bulk-insert an Arrow table (money in integer 1/10,000 units) plus constant UTC times.

    No Python row is made on PostgreSQL (Arrow writes CSV, COPY reads it) and only the driver's
    values on SQLite, in the forms SQLAlchemy stores (text times and dates, 0/1 booleans). Money
    columns store exactly these integer units (`Money` is a scaled integer).
    """
    for name, moment in constants.items():
        naive = moment.astimezone(UTC).replace(tzinfo=None)
        rows = rows.append_column(name, pa.array([naive] * rows.num_rows, pa.timestamp("us")))
    if rows.num_rows == 0:
        return
    columns = ", ".join(rows.schema.names)
    session.flush()
    driver: Any = session.connection().connection.driver_connection
    if session.get_bind().dialect.name == "postgresql":
        buffer = io.BytesIO()
        pa_csv.write_csv(
            rows, buffer, pa_csv.WriteOptions(include_header=False, quoting_style="needed")
        )
        with (
            driver.cursor() as cursor,
            # CSV: NULL is an unquoted empty field, an empty string a quoted one.
            cursor.copy(f"COPY {table.name} ({columns}) FROM STDIN WITH (FORMAT csv)") as copy,
        ):
            copy.write(buffer.getvalue())
        return
    values = []
    for column in rows.itercolumns():
        kind = column.type
        if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
            column = column.cast(pa.string())  # "2026-07-01 12:00:00.000000", "2026-07-01"
        elif pa.types.is_boolean(kind) or pa.types.is_decimal(kind):  # DuckDB's wide SUMs
            column = column.cast(pa.int64())
        values.append(column.to_pylist())
    marks = ", ".join("?" for _ in rows.schema.names)
    driver.executemany(
        f"INSERT INTO {table.name} ({columns}) VALUES ({marks})", zip(*values, strict=True)
    )


def customer_time_zones(session: Session, store_id: int) -> list[str]:
    """Return the distinct time zones of the store's customers."""
    rows = session.execute(
        select(Customer.timezone)
        .where(Customer.store_id == store_id, Customer.timezone.is_not(None))
        .distinct()
    )
    return [zone for (zone,) in rows if zone]


def live_customer_count(session: Session, store_id: int) -> int:
    """Return the number of the store's customers that were not merged away."""
    count = session.scalar(
        select(func.count())
        .select_from(Customer)
        .where(Customer.store_id == store_id, Customer.merged_into_id.is_(None))
    )
    return int(count or 0)


def score_of_customer(session: Session, store_id: int, customer_id: int) -> CustomerScore | None:
    """Return the stored scores of one of the store's customers, if computed."""
    return session.scalar(
        select(CustomerScore)
        .join(Customer, Customer.id == CustomerScore.customer_id)
        .where(Customer.store_id == store_id, CustomerScore.customer_id == customer_id)
    )


def store_scores(session: Session, store_id: int) -> list[dict[str, Any]]:
    """Return every stored score row of the store, by customer id."""
    rows = session.execute(
        select(scores_table)
        .join(customers_table, customers_table.c.id == scores_table.c.customer_id)
        .where(customers_table.c.store_id == store_id)
        .order_by(scores_table.c.customer_id)
    ).mappings()
    return [dict(row) for row in rows]


def store_aggregates(session: Session, store_id: int) -> list[dict[str, Any]]:
    """Return every kept aggregate row of the store, by customer id."""
    rows = session.execute(
        select(*(column for column in aggregates_table.c if column.name != "refreshed_at"))
        .join(customers_table, customers_table.c.id == aggregates_table.c.customer_id)
        .where(customers_table.c.store_id == store_id)
        .order_by(aggregates_table.c.customer_id)
    ).mappings()
    return [dict(row) for row in rows]


def store_category_aggregates(session: Session, store_id: int) -> list[dict[str, Any]]:
    """Return every kept category aggregate row of the store."""
    rows = session.execute(
        select(categories_table)
        .join(customers_table, customers_table.c.id == categories_table.c.customer_id)
        .where(customers_table.c.store_id == store_id)
        .order_by(categories_table.c.customer_id, categories_table.c.category)
    ).mappings()
    return [dict(row) for row in rows]


def last_scored_at(session: Session, store_id: int) -> tuple[datetime | None, datetime | None]:
    """Return when the store's scores were last computed and the moment they describe."""
    row = session.execute(
        select(func.max(CustomerScore.computed_at), func.max(CustomerScore.as_of))
        .join(Customer, Customer.id == CustomerScore.customer_id)
        .where(Customer.store_id == store_id)
    ).one()
    return row[0], row[1]


def score_values(score: CustomerScore) -> dict[str, Any]:
    """Return a score row as JSON-ready values (money as decimal strings)."""
    values: dict[str, Any] = {}
    for column in scores_table.c:
        value = getattr(score, column.name)
        if isinstance(value, Decimal):
            value = str(value)
        elif isinstance(value, datetime | date):
            value = value.isoformat()
        values[column.name] = value
    values["preferred_categories"] = [
        category
        for category in (values.pop(f"preferred_category_{rank}") for rank in (1, 2, 3))
        if category
    ]
    return values


def stage_counts(session: Session, store_id: int) -> dict[str, dict[str, int]]:
    """Return how many of the store's scored customers are in each segment and lifecycle stage."""
    counts: dict[str, dict[str, int]] = {"rfm_segment": {}, "lifecycle_stage": {}, "is_vip": {}}
    for name in counts:
        column = scores_table.c[name]
        rows = session.execute(
            select(column, func.count())
            .join(customers_table, customers_table.c.id == scores_table.c.customer_id)
            .where(customers_table.c.store_id == store_id)
            .group_by(column)
        )
        counts[name] = {str(value): int(count) for value, count in rows}
    return counts


def scores_of_customer(session: Session, store_id: int, customer_id: int) -> dict[str, Any] | None:
    """Return the latest stored scores of a customer as JSON-ready values, or None."""
    score = score_of_customer(session, store_id, customer_id)
    return score_values(score) if score is not None else None


def stored_distribution(session: Session, store_id: int) -> dict[str, Any] | None:
    """Return the RFM cells, stage counts and VIP count of the stored scores (None if unscored)."""
    store_filter = customers_table.c.store_id == store_id
    joined = scores_table.join(customers_table, customers_table.c.id == scores_table.c.customer_id)
    fm_total = scores_table.c.frequency_score + scores_table.c.monetary_score
    cells = session.execute(
        select(scores_table.c.recency_score, fm_total, scores_table.c.rfm_segment, func.count())
        .select_from(joined)
        .where(store_filter)
        .group_by(scores_table.c.recency_score, fm_total, scores_table.c.rfm_segment)
    ).all()
    if not cells:
        return None
    stages = session.execute(
        select(
            scores_table.c.lifecycle_stage,
            func.count(),
            func.sum(func.cast(scores_table.c.is_vip, Integer)),
        )
        .select_from(joined)
        .where(store_filter)
        .group_by(scores_table.c.lifecycle_stage)
    ).all()
    computed_at, as_of = last_scored_at(session, store_id)
    return {
        "as_of": as_of,
        "computed_at": computed_at,
        "cells": [
            {"recency": recency, "fm_total": total, "segment": segment, "customers": count}
            for recency, total, segment, count in cells
        ],
        "stages": {stage: int(count) for stage, count, _ in stages},
        "vip": sum(int(vip or 0) for _, _, vip in stages),
    }


def score_run(session: Session, store_id: int) -> ScoreRun | None:
    """Return the inputs the store's stored scores were computed from, if recorded."""
    return session.get(ScoreRun, store_id)


def save_score_run(
    session: Session,
    store_id: int,
    *,
    computed_at: datetime,
    as_of: datetime,
    settings: dict[str, Any],
    bounds: dict[str, Any],
    categories: dict[str, Any],
) -> None:
    """Record the inputs of the store's scores (replacing the previous record)."""
    run = session.get(ScoreRun, store_id)
    if run is None:
        run = ScoreRun(store_id=store_id)
        session.add(run)
    run.computed_at = computed_at
    run.as_of = as_of
    run.settings = settings
    run.bounds = bounds
    run.categories = categories
    session.flush()


def forget_score_run(session: Session, store_id: int) -> None:
    """Drop the record of the store's score inputs (the next incremental rescore is full)."""
    session.execute(delete(ScoreRun).where(ScoreRun.store_id == store_id))


def vip_candidates(session: Session, store_id: int, categories: Sequence[str]) -> list[int]:
    """Return the scored repeat buyers whose first preferred category is one of `categories`.

    Only they can change VIP flag when those categories' average order value changes.
    """
    found: list[int] = []
    for chunk in chunks(sorted(categories)):
        found.extend(
            session.scalars(
                select(scores_table.c.customer_id)
                .join(customers_table, customers_table.c.id == scores_table.c.customer_id)
                .where(
                    customers_table.c.store_id == store_id,
                    scores_table.c.preferred_category_1.in_(list(chunk)),
                    scores_table.c.order_count >= 2,
                )
            )
        )
    return found


def unmatched_scores(session: Session, store_id: int) -> list[int]:
    """Return live customers without stored scores and merged ones that still have them."""
    customers = customers_table.c
    joined = customers_table.outerjoin(scores_table, scores_table.c.customer_id == customers.id)
    return list(
        session.scalars(
            select(customers.id)
            .select_from(joined)
            .where(
                customers.store_id == store_id,
                or_(
                    and_(customers.merged_into_id.is_(None), scores_table.c.customer_id.is_(None)),
                    and_(
                        customers.merged_into_id.is_not(None),
                        scores_table.c.customer_id.is_not(None),
                    ),
                ),
            )
        )
    )
