"""How DuckDB holds the exported rows: order statuses as an ENUM, same answers as plain text."""

from __future__ import annotations

from datetime import datetime

import ibis
import pyarrow as pa

from patronage.analytics.engines import DuckDBEngine, arrow_table
from patronage.analytics.scoring import REVENUE_STATUSES, SCHEMAS, revenue_orders

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
