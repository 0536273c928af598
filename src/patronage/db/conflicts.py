"""Portable upsert helpers and a retry for races on unique keys."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

T = TypeVar("T")


def insert_ignoring_conflicts(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], *, keys: Sequence[str]
) -> None:
    """INSERT rows, silently skipping those whose unique `keys` already exist."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    statement = module.insert(table).on_conflict_do_nothing(index_elements=list(keys))
    session.execute(statement, list(rows))


def retry_on_conflict(session: Session, work: Callable[[], T], attempts: int = 3) -> T:
    """Run `work` in a savepoint; if a concurrent writer won a unique-key race, run it again.

    On PostgreSQL the losing INSERT waits for the winner to commit and then fails; the retry sees
    the winner's row. SQLite serialises writers (BEGIN IMMEDIATE), so it never gets here.
    """
    for attempt in range(attempts):
        savepoint = session.begin_nested()
        try:
            result = work()
            savepoint.commit()
            return result
        except IntegrityError:
            savepoint.rollback()
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")
