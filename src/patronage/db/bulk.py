"""Bulk inserts and look-ups that skip SQLAlchemy's per-value processing (imports, intake).

SQLAlchemy runs a bind processor per value and, on SQLite, turns `INSERT … RETURNING` into one
statement per row; that was most of the time of a large import. Here each converted column is
turned into what the driver takes in one pass (money into its scaled integer, aware datetimes
into naive UTC — on SQLite the very text SQLAlchemy writes —, JSON documents into text), and the
rows go to the driver as they are: executemany on SQLite, COPY FROM STDIN on PostgreSQL. Ids come
from `db.ids.allocate_ids`, so nothing needs RETURNING. `select_rows` is the way back: the rows
whose key is one of many values, converted a column at a time into what the ORM would give.

Errors look like SQLAlchemy's: a value that cannot be stored raises `StatementError`, a refusal
of the database the matching `DBAPIError` subclass (`IntegrityError`, …).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import chain
from typing import Any

from sqlalchemy import Connection, Table, UniqueConstraint
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Session
from sqlalchemy.sql import sqltypes

from patronage.db.types import ScaledDecimal, UTCDateTime

Converter = Callable[[Any], Any]
ColumnConverter = Callable[[Sequence[Any]], list[Any]]

_SELECT_CHUNK = 1_000
_SQLITE_PARAMETERS = 32_766  # SQLite's default limit of parameters per statement (3.32 and later)
_SQLITE_ROWS_PER_STATEMENT = 500
_SQLITE_CACHE_KIB = 65_536  # page cache of a connection used for a large load


@dataclass(frozen=True, slots=True)
class _Plan:
    """How to insert one set of columns of one table on one dialect."""

    insert_sql: str
    insert_parts: tuple[str, str, str]  # before the VALUES lists, one VALUES list, after them
    copy_sql: str | None  # PostgreSQL, when conflicts need not be skipped
    converters: tuple[tuple[int, ColumnConverter], ...]  # (position, converter) of columns


_plans: dict[tuple[str, str, tuple[str, ...], tuple[str, ...] | None], _Plan] = {}


def prepare_bulk_load(session: Session) -> None:
    """Give the session's connection room for a large load (on SQLite; nothing on PostgreSQL).

    SQLite's default page cache is 2 MiB; a load into tables of several indexes then re-reads
    index pages from the file for nearly every row once the indexes outgrow it.
    """
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql(f"PRAGMA cache_size=-{_SQLITE_CACHE_KIB}")


def bulk_insert(
    session: Session, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """Insert rows, each a sequence of Python values in `columns` order, in the session's work."""
    _insert(session, table, columns, rows, None)


def bulk_insert_ignoring_conflicts(
    session: Session,
    table: Table,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    keys: Sequence[str],
) -> None:
    """Insert rows like bulk_insert, silently skipping those whose unique `keys` already exist."""
    _insert(session, table, columns, rows, tuple(keys))


def select_rows(
    session: Session,
    table: Table,
    columns: Sequence[str],
    *,
    where: Mapping[str, Any],
    key: str,
    values: Iterable[Any],
    for_update: bool = False,
) -> list[tuple[Any, ...]]:
    """The `columns` of the rows whose `key` is one of `values` and whose `where` columns match.

    Values come back as the ORM gives them (Decimal money, aware UTC datetimes, parsed JSON);
    `where` values and `values` go to the driver as they are (strings, integers). `for_update`
    locks the rows on PostgreSQL (SQLite writers are serialised anyway).
    """
    wanted = list(dict.fromkeys(values))
    if not wanted:
        return []
    connection = session.connection()
    dialect = connection.dialect.name
    converters = _result_converters(dialect, table, tuple(columns))
    if dialect == "sqlite" and _leads_an_index(table, key):
        # `+store_id = ?` keeps SQLite (which has no statistics) from preferring an index on the
        # `where` column and scanning every row of the store once per look-up.
        conditions = [f"+t.{name} = ?" for name in where]
    else:
        conditions = [f"t.{name} = {'?' if dialect == 'sqlite' else '%s'}" for name in where]
    found: list[tuple[Any, ...]] = []
    selected = ", ".join(f"t.{name}" for name in columns)
    for start in range(0, len(wanted), _SELECT_CHUNK):
        chunk = wanted[start : start + _SELECT_CHUNK]
        if dialect == "postgresql":
            # A join with the array, planned for this very array: a generic plan (what psycopg's
            # prepared statements get after a few runs) of `= ANY(%s)` or `IN (SELECT unnest(%s))`
            # filters every row of the store through the array instead of probing the index.
            array_type = "bigint" if isinstance(table.c[key].type, sqltypes.Integer) else "text"
            sql = (
                f"SELECT {selected} FROM unnest(%s::{array_type}[]) AS wanted(value) "
                f"JOIN {table.name} AS t ON t.{key} = wanted.value"
                + "".join(f" AND {condition}" for condition in conditions)
                + (" FOR UPDATE OF t" if for_update else "")
            )
            found.extend(_fetch_unprepared(connection, sql, (chunk, *where.values())))
            continue
        membership = f"t.{key} IN ({', '.join(['?'] * len(chunk))})"
        sql = f"SELECT {selected} FROM {table.name} AS t WHERE " + " AND ".join(
            [*conditions, membership]
        )
        found.extend(connection.exec_driver_sql(sql, (*where.values(), *chunk)).fetchall())
    if not converters or not found:
        return [tuple(row) for row in found]
    result_columns: list[Sequence[Any]] = list(zip(*found, strict=True))
    for position, converter in converters:
        result_columns[position] = converter(result_columns[position])
    return list(zip(*result_columns, strict=True))


def _fetch_unprepared(connection: Connection, sql: str, parameters: tuple[Any, ...]) -> list[Any]:
    """PostgreSQL: run a query through psycopg without preparing it, so it gets a custom plan."""
    driver_connection: Any = connection.connection.driver_connection
    try:
        return list(driver_connection.execute(sql, parameters, prepare=False).fetchall())
    except connection.dialect.loaded_dbapi.Error as error:
        raise DBAPIError.instance(
            sql, parameters, error, connection.dialect.loaded_dbapi.Error, dialect=None
        ) from error


def _leads_an_index(table: Table, column: str) -> bool:
    """Whether `column` is the key or the first column of an index or unique constraint."""
    if column in table.primary_key.columns:
        return True
    for index in table.indexes:
        if index.expressions and getattr(index.expressions[0], "name", None) == column:
            return True
    return any(
        isinstance(constraint, UniqueConstraint) and constraint.columns.keys()[:1] == [column]
        for constraint in table.constraints
    )


def driver_rows(
    session: Session, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> list[tuple[Any, ...]]:
    """The rows as the driver receives them (for tests and for callers that inspect them)."""
    plan = _plan(session.get_bind().dialect.name, table, tuple(columns), None)
    return _convert(plan, list(rows), len(columns))


def _insert(
    session: Session,
    table: Table,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    keys: tuple[str, ...] | None,
) -> None:
    rows = rows if isinstance(rows, list) else list(rows)
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect.name
    plan = _plan(dialect, table, tuple(columns), keys)
    values = _convert(plan, rows, len(columns))
    if dialect == "sqlite":
        _insert_in_statements(connection, plan, values)
        return
    if plan.copy_sql is None:
        connection.exec_driver_sql(plan.insert_sql, values)
        return
    driver_connection: Any = connection.connection.driver_connection
    try:
        with driver_connection.cursor() as cursor, cursor.copy(plan.copy_sql) as copy:
            for row in values:
                copy.write_row(row)
    except connection.dialect.loaded_dbapi.Error as error:
        raise DBAPIError.instance(
            plan.copy_sql, None, error, connection.dialect.loaded_dbapi.Error, dialect=None
        ) from error


def _insert_in_statements(connection: Connection, plan: _Plan, rows: list[tuple[Any, ...]]) -> None:
    """SQLite: many rows per INSERT, so that the C code runs long stretches without the GIL.

    executemany would step once per row, giving the GIL back and forth each time; a thread
    running Python meanwhile (the importer reading the next chunk) then makes every row wait for
    the interpreter's switch interval.
    """
    width = len(rows[0])
    per_statement = max(1, min(_SQLITE_ROWS_PER_STATEMENT, _SQLITE_PARAMETERS // width))
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        connection.exec_driver_sql(
            _statement_for(plan, len(chunk)), tuple(chain.from_iterable(chunk))
        )


def _statement_for(plan: _Plan, count: int) -> str:
    """The plan's INSERT with `count` rows of placeholders."""
    head, values, tail = plan.insert_parts
    return f"{head}{', '.join([values] * count)}{tail}"


def _convert(plan: _Plan, rows: list[Sequence[Any]], width: int) -> list[tuple[Any, ...]]:
    """Convert the columns that need it, a column at a time."""
    if not plan.converters:
        return [tuple(row) for row in rows]
    try:
        columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
        if len(columns) != width:
            raise ValueError(f"rows have {len(columns)} values, not {width}")
        for position, converter in plan.converters:
            columns[position] = converter(columns[position])
    except Exception as error:  # as SQLAlchemy wraps a failing bind processor
        raise StatementError(str(error), None, None, error) from error
    return list(zip(*columns, strict=True))


def _plan(
    dialect: str, table: Table, columns: tuple[str, ...], keys: tuple[str, ...] | None
) -> _Plan:
    cache_key = (dialect, table.name, columns, keys)
    plan = _plans.get(cache_key)
    if plan is None:
        plan = _plans[cache_key] = _make_plan(dialect, table, columns, keys)
    return plan


def _make_plan(
    dialect: str, table: Table, columns: tuple[str, ...], keys: tuple[str, ...] | None
) -> _Plan:
    names = ", ".join(columns)
    marker = "?" if dialect == "sqlite" else "%s"
    head = f"INSERT INTO {table.name} ({names}) VALUES "
    values = f"({', '.join([marker] * len(columns))})"
    tail = "" if keys is None else f" ON CONFLICT ({', '.join(keys)}) DO NOTHING"
    insert_sql = head + values + tail
    copy_sql = None
    if dialect == "postgresql" and keys is None:
        copy_sql = f"COPY {table.name} ({names}) FROM STDIN"
    converters: list[tuple[int, ColumnConverter]] = []
    for position, name in enumerate(columns):
        converter = _converter(table.c[name].type, dialect)
        if converter is not None:
            converters.append((position, converter))
    return _Plan(insert_sql, (head, values, tail), copy_sql, tuple(converters))


_result_plans: dict[tuple[str, str, tuple[str, ...]], tuple[tuple[int, ColumnConverter], ...]] = {}


def _result_converters(
    dialect: str, table: Table, columns: tuple[str, ...]
) -> tuple[tuple[int, ColumnConverter], ...]:
    cache_key = (dialect, table.name, columns)
    plan = _result_plans.get(cache_key)
    if plan is None:
        found = []
        for position, name in enumerate(columns):
            converter = _result_converter(table.c[name].type, dialect)
            if converter is not None:
                found.append((position, converter))
        plan = _result_plans[cache_key] = tuple(found)
    return plan


def _result_converter(column_type: Any, dialect: str) -> ColumnConverter | None:
    """How a driver's value of the column becomes what the ORM would return."""
    if isinstance(column_type, ScaledDecimal):
        return _each(_unscaled(column_type.scale))
    if isinstance(column_type, UTCDateTime):
        return _each(_moment_of_text if dialect == "sqlite" else _aware_utc)
    if dialect == "postgresql":
        return None  # psycopg returns dates, booleans and parsed JSON already
    if isinstance(column_type, sqltypes.JSON):
        return _each(_document_of_text)
    if isinstance(column_type, sqltypes.Date):
        return _each(_date_of_text)
    if isinstance(column_type, sqltypes.Boolean):
        return _each(_boolean_of_integer)
    return None


def _converter(column_type: Any, dialect: str) -> ColumnConverter | None:
    if isinstance(column_type, ScaledDecimal):
        return _scaled(column_type.scale)
    if isinstance(column_type, UTCDateTime):
        return _each(_moment_text) if dialect == "sqlite" else _each_distinct(_naive_utc)
    if isinstance(column_type, sqltypes.JSON):
        return _each(_document_text, keeps_none=False)
    if isinstance(column_type, sqltypes.Date) and dialect == "sqlite":
        return _each(_date_text)
    if isinstance(column_type, sqltypes.Date | sqltypes.String | sqltypes.Integer):
        return None
    if isinstance(column_type, sqltypes.Boolean):
        return None  # both drivers take bool (SQLite stores it as 1/0, as SQLAlchemy does)
    raise NotImplementedError(f"bulk_insert cannot convert {column_type!r} values")


def _each(convert: Converter, *, keeps_none: bool = True) -> ColumnConverter:
    """A column converter applying `convert` to each value (a column of NULLs as it is)."""

    def convert_all(values: Sequence[Any]) -> list[Any]:
        if keeps_none and values.count(None) == len(values):
            return list(values)
        return list(map(convert, values))

    return convert_all


def _each_distinct(convert: Converter) -> ColumnConverter:
    """A column converter calling `convert` once per distinct value (timestamps repeat a lot)."""

    def convert_all(values: Sequence[Any]) -> list[Any]:
        converted = {value: convert(value) for value in dict.fromkeys(values)}
        return list(map(converted.__getitem__, values))

    return convert_all


def _scaled(scale: int) -> ColumnConverter:
    """Decimals (or ints) into counts of 10**-scale units, refusing to round (as ScaledDecimal)."""
    factor = Decimal(10) ** scale
    multiply = factor.__mul__

    def convert_one(value: Any) -> int | None:
        if value is None:
            return None
        if value.__class__ is not Decimal:
            value = Decimal(value)
        scaled = value * factor
        integral = int(scaled)
        if integral != scaled:
            raise ValueError(f"{value} has more than {scale} decimal places")
        return integral

    def convert(values: Sequence[Any]) -> list[Any]:
        # The usual column (Decimals, all exact) in three C-level passes; anything else by value.
        try:
            scaled = list(map(multiply, values))
            integral = list(map(int, scaled))
        except (TypeError, ValueError, ArithmeticError):
            return list(map(convert_one, values))
        if integral != scaled:
            return list(map(convert_one, values))
        return integral

    return convert


# Recently converted values: the same moments recur across tables (an order's placed_at is also
# its first timeline step, its customer's first_seen_at and its consent's recorded_at).
_moment_texts: dict[datetime, str] = {}
_documents: dict[tuple[Any, ...], str] = {}
_MEMO_SIZE = 65_536


def _moment_text(value: datetime | None) -> str | None:
    """Aware datetime as the naive UTC text SQLite columns hold (`2026-06-24 17:28:34.000000`)."""
    if value is None:
        return None
    text = _moment_texts.get(value)
    if text is None:
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC")
        text = value.astimezone(UTC).isoformat(" ", "microseconds")[:26]
        if len(_moment_texts) >= _MEMO_SIZE:
            _moment_texts.clear()
        _moment_texts[value] = text
    return text


def _naive_utc(value: datetime | None) -> datetime | None:
    """Aware datetime into naive UTC (PostgreSQL `timestamp without time zone`)."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given; use timezone-aware UTC")
    return value.astimezone(UTC).replace(tzinfo=None)


def _date_text(value: date | None) -> str | None:
    """A date in SQLAlchemy's SQLite text form, `2026-06-24`."""
    if value is None:
        return None
    if not isinstance(value, date):
        raise TypeError("SQLite Date type only accepts Python date objects as input.")
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"


def _document_text(value: Any) -> str:
    """A JSON document as SQLAlchemy serialises it (None is JSON null)."""
    kind = value.__class__
    if not value:
        if kind is list:
            return "[]"
        if kind is dict:
            return "{}"
        return json.dumps(value)
    # Flat documents of strings (tags, codes, most attributes) repeat: serialise each once.
    if kind is dict:
        parts = tuple(value.items())
        flat = all(part[1].__class__ is str for part in parts)
    elif kind is list:
        parts = tuple(value)
        flat = all(part.__class__ is str for part in parts)
    else:
        return json.dumps(value)
    if not flat:
        return json.dumps(value)
    key = (kind, parts)
    text = _documents.get(key)
    if text is None:
        text = json.dumps(value)
        if len(_documents) >= _MEMO_SIZE:
            _documents.clear()
        _documents[key] = text
    return text


def _unscaled(scale: int) -> Converter:
    """A count of 10**-scale units back into its Decimal (as ScaledDecimal reads it)."""

    def convert(value: int | None) -> Decimal | None:
        return None if value is None else Decimal(value).scaleb(-scale)

    return convert


def _moment_of_text(value: str | None) -> datetime | None:
    """SQLite's naive UTC text back into an aware datetime."""
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


def _aware_utc(value: datetime | None) -> datetime | None:
    """PostgreSQL's naive UTC timestamp as an aware datetime."""
    return None if value is None else value.replace(tzinfo=UTC)


def _document_of_text(value: str | None) -> Any:
    """JSON text back into its document."""
    if value is None:
        return None
    if value == "[]":
        return []
    if value == "{}":
        return {}
    return json.loads(value)


def _date_of_text(value: str | None) -> date | None:
    """SQLite's date text back into a date."""
    return None if value is None else date.fromisoformat(value)


def _boolean_of_integer(value: int | None) -> bool | None:
    """SQLite's 1/0 back into a boolean."""
    return None if value is None else bool(value)
