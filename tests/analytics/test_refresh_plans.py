"""The refresh of kept aggregates probes by customer id instead of reading the whole store."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from patronage.analytics.aggregates import refresh_customer_aggregates
from patronage.stores.models import Store
from tests.analytics.analytics_fixture import build_fixture_store


def _plans(session: Session, store: Store, customer_ids: list[int]) -> dict[str, str]:
    """Run a refresh; return the plan of each write and store check it ran, by statement."""
    statements: list[tuple[str, Any]] = []
    connection = session.connection()

    def capture(_c: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        checks_store = statement.startswith("SELECT") and "customers.id IN" in statement
        if statement.lstrip().startswith(("DELETE", "INSERT")) or checks_store:
            statements.append((statement, parameters))

    event.listen(connection, "before_cursor_execute", capture)
    try:
        refresh_customer_aggregates(session, store.id, customer_ids)
    finally:
        event.remove(connection, "before_cursor_execute", capture)
    plans = {}
    for statement, parameters in statements:
        rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()
        plans[statement] = "\n".join(str(row[-1]) for row in rows)
    return plans


def test_the_refresh_probes_indexes_by_customer_on_sqlite(session: Session, store: Store) -> None:
    """No statement of the refresh scans a table of the store: each probes an index."""
    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("the plan of SQLite's query planner")
    fixture = build_fixture_store(session, store)
    plans = _plans(session, store, list(fixture.ids.values())[:2])
    # Per table a store check (one statement text for both), a delete and an insert.
    assert len(plans) == 5, list(plans)
    for statement, plan in plans.items():
        lines = plan.splitlines()
        # The statement's own intermediate results (subqueries) may be scanned; tables may not.
        intermediate = {
            line.split()[-1] for line in lines if line.startswith(("MATERIALIZE", "CO-ROUTINE"))
        }
        scanned = [
            line
            for line in lines
            if line.startswith("SCAN ")
            and line.split()[1] not in intermediate
            and not line.startswith("SCAN (subquery")
        ]
        assert not scanned, (statement, plan)
        searches = [line for line in lines if line.startswith("SEARCH ")]
        assert searches, (statement, plan)
        for line in searches:  # each probe is by a customer, an order or a row id
            assert any(key in line for key in ("customer_id=?", "order_id=?", "rowid=?")), (
                statement,
                plan,
            )
