"""Primary keys allocated before the insert, so that bulk inserts need no RETURNING."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, func, select, text
from sqlalchemy.orm import Session

_RESERVED = "patronage.reserved_ids"  # session.info key: (transaction, {table: last id reserved})


def allocate_ids(session: Session, table: Table, count: int) -> list[int]:
    """Reserve `count` new, ascending ids of `table`'s integer `id` key for this transaction.

    PostgreSQL draws them from the column's sequence, so concurrent writers never collide. SQLite
    has no sequence, but every transaction holds the write lock from its start (BEGIN IMMEDIATE),
    so the ids after the largest one stored, or already reserved in this transaction, stay free
    until it ends. Insert the rows before something else in the transaction inserts into `table`
    without an explicit id (SQLite would hand out the same ids).
    """
    if count <= 0:
        return []
    if session.get_bind().dialect.name == "postgresql":
        values = session.scalars(
            text(
                "SELECT nextval(pg_get_serial_sequence(:table, 'id')) "
                "FROM generate_series(1, :count)"
            ),
            {"table": table.name, "count": count},
        )
        return sorted(values)
    stored = session.scalar(select(func.coalesce(func.max(table.c.id), 0))) or 0
    reserved = _reservations(session)
    first = max(stored, reserved.get(table.name, 0)) + 1
    reserved[table.name] = first + count - 1
    return list(range(first, first + count))


def _reservations(session: Session) -> dict[str, int]:
    """The ids reserved in the session's current transaction, by table."""
    transaction = session.get_transaction()
    held: tuple[Any, dict[str, int]] | None = session.info.get(_RESERVED)
    if held is None or held[0] is not transaction:
        held = (transaction, {})
        session.info[_RESERVED] = held
    return held[1]
