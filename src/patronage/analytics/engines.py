"""Where the scoring definitions run: the store's own database, DuckDB, or Spark in local mode.

`DatabaseEngine` compiles an Ibis expression to the session's SQL dialect (SQLite or PostgreSQL) and
runs it through the session, inside the caller's transaction: nothing leaves the database when
the result is written with `insert_select`. `DuckDBEngine` and `SparkEngine` receive the store's
rows as Arrow tables (a narrow export of the columns the definitions read) and run the same
expressions there. Every engine returns rows normalised to the same Python values, so results can
be compared exactly.
"""

from __future__ import annotations

import io
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import sqlglot.expressions as sge
from ibis.backends.sql.compilers.duckdb import DuckDBCompiler
from ibis.backends.sql.compilers.postgres import PostgresCompiler
from ibis.backends.sql.compilers.sqlite import SQLiteCompiler
from sqlalchemy import BigInteger, String, func, select, text, type_coerce
from sqlalchemy.orm import Session

from patronage.analytics.scoring import (
    QUINTILE_MEASURES,
    SCHEMAS,
    QuintileBounds,
    Sources,
    bound_positions,
    quintile_bounds,
)
from patronage.customers.models import Customer
from patronage.db.base import table_of
from patronage.orders.models import Order, OrderLine
from patronage.tracking.models import Event

ENGINE_NAMES = ("database", "duckdb", "spark")

_IBIS_DIALECTS = {"sqlite": "sqlite", "postgresql": "postgres"}


def _install_compile_rules() -> None:
    """Teach Ibis's SQLite and PostgreSQL compilers `integer.as_timestamp("s")`.

    Ibis 12 has no rule for TimestampFromUNIX on these two; Spark has its own. DuckDB's own rule
    (TO_TIMESTAMP) makes a TIMESTAMPTZ, whose cast to a date goes through the session's time
    zone; EPOCH_MS gives the plain UTC timestamp the other engines give, at a third of the cost.
    """

    def sqlite_rule(self: Any, op: Any, *, arg: Any, unit: Any) -> Any:
        if unit.short != "s":
            raise NotImplementedError("only whole seconds")
        return self.f.datetime(arg, sge.convert("unixepoch"))

    def postgres_rule(self: Any, op: Any, *, arg: Any, unit: Any) -> Any:
        if unit.short != "s":
            raise NotImplementedError("only whole seconds")
        return sge.AtTimeZone(this=self.f.to_timestamp(arg), zone=sge.convert("UTC"))

    def sqlite_floor(value: Any) -> Any:
        # SQLAlchemy replaces SQLite's FLOOR with Python's math.floor, which raises on NULL;
        # this is FLOOR in plain SQL: truncate, then step down for negative fractions.
        truncated = sge.Cast(this=value, to=sge.DataType.build("BIGINT"))
        below = sge.paren(sge.LT(this=value, expression=truncated))
        return sge.paren(sge.Sub(this=truncated, expression=below))

    def sqlite_floor_rule(self: Any, op: Any, *, arg: Any) -> Any:
        return self.cast(sqlite_floor(arg), op.dtype)

    def sqlite_floor_divide_rule(self: Any, op: Any, *, left: Any, right: Any) -> Any:
        quotient = sge.Div(
            this=sge.Cast(this=sge.paren(left), to=sge.DataType.build("DOUBLE")),
            expression=sge.paren(right),
        )
        return self.cast(sqlite_floor(sge.paren(quotient)), op.dtype)

    def duckdb_rule(self: Any, op: Any, *, arg: Any, unit: Any) -> Any:
        if unit.short != "s":
            raise NotImplementedError("only whole seconds")
        return self.f.epoch_ms(sge.Mul(this=sge.paren(arg), expression=sge.convert(1000)))

    SQLiteCompiler.visit_TimestampFromUNIX = sqlite_rule
    DuckDBCompiler.visit_TimestampFromUNIX = duckdb_rule
    SQLiteCompiler.visit_Floor = sqlite_floor_rule
    SQLiteCompiler.visit_FloorDivide = sqlite_floor_divide_rule
    PostgresCompiler.visit_TimestampFromUNIX = postgres_rule


_install_compile_rules()


class AnalyticsEngine(ABC):
    """An engine the Ibis definitions can run on."""

    name: str
    ranking = "histogram"  # how quintile scores count worse buyers (see scoring)

    @abstractmethod
    def table(self, name: str) -> ir.Table:
        """Return one of the tables of `scoring.SCHEMAS` on this engine."""

    @abstractmethod
    def _rows(self, expression: ir.Table) -> list[tuple[Any, ...]]:
        """Run `expression` and return its raw rows in column order."""

    def sources(self, *, with_lines: bool = True, with_events: bool = True) -> Sources:
        """Return the raw tables of the definitions on this engine."""
        return Sources(
            orders=self.table("orders"),
            customers=self.table("customers"),
            lines=self.table("order_lines") if with_lines else None,
            events=self.table("events") if with_events else None,
        )

    def fetch(self, expression: ir.Table) -> list[dict[str, Any]]:
        """Run `expression` and return its rows with engine-independent Python values."""
        schema = expression.schema()
        names = list(schema.names)
        types = [schema[name] for name in names]
        return [
            {
                name: normalise(value, kind)
                for name, value, kind in zip(names, row, types, strict=True)
            }
            for row in self._rows(expression)
        ]

    def quintile_bounds(self, measures: ir.Table) -> QuintileBounds:
        """Return the quintile bounds of `scoring.buyer_measures` rows (row numbers, in place)."""
        (buyers,) = self._rows(measures.aggregate(buyers=measures.count()))[0]
        positions = bound_positions(int(buyers))
        found: dict[str, tuple[int, ...]] = {}
        for _, measure, larger_is_worse in QUINTILE_MEASURES:
            column = measures[measure]
            ranked = measures.select(
                value=column,
                position=ibis.row_number().over(
                    order_by=ibis.desc(column) if larger_is_worse else column
                ),
            )
            picked = ranked.filter(ranked.position.isin(positions)).order_by("position")
            rows = self._rows(picked.select("value")) if positions else []
            found[measure] = tuple(int(value) for (value,) in rows)
        return QuintileBounds(buyers=int(buyers), **found)

    def close(self) -> None:  # noqa: B027 - most engines hold nothing to release
        """Release the engine's resources."""


class DatabaseEngine(AnalyticsEngine):
    """The store's own SQLite or PostgreSQL database, through the caller's session."""

    def __init__(self, session: Session) -> None:
        self.session = session
        backend = session.get_bind().dialect.name
        if backend not in _IBIS_DIALECTS:
            raise ValueError(f"no analytics support for {backend}")
        self.name = backend
        self.dialect = _IBIS_DIALECTS[backend]
        self.ranking = "window" if backend == "sqlite" else "histogram"

    def table(self, name: str) -> ir.Table:
        """Return an unbound table named like the database table; compiled, never executed."""
        return ibis.table(SCHEMAS[name], name=name)

    def sql(self, expression: ir.Expr) -> str:
        """Return the SQL of `expression` in this database's dialect."""
        return str(ibis.to_sql(expression, dialect=self.dialect))

    def _rows(self, expression: ir.Table) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self.session.execute(text(self.sql(expression))).all()]

    def insert_select(
        self,
        target: str,
        expression: ir.Table,
        *,
        columns: Sequence[str],
        constants: Mapping[str, Any] | None = None,
        constant_types: Mapping[str, Any] | None = None,
    ) -> None:
        """INSERT INTO `target` the rows of `expression`, plus constant columns, in the database."""
        constants = dict(constants or {})
        names = [*columns, *constants]
        selected = ", ".join(
            [*(f'scored."{column}"' for column in columns), *(f":{name}" for name in constants)]
        )
        statement = text(
            f"INSERT INTO {target} ({', '.join(names)}) "
            f"SELECT {selected} FROM ({self.sql(expression)}) AS scored"
        )
        if constant_types:
            from sqlalchemy import bindparam

            statement = statement.bindparams(
                *(bindparam(name, type_=kind) for name, kind in constant_types.items())
            )
        self.session.execute(statement, constants)


class _ArrowEngine(AnalyticsEngine):
    """An engine that holds its own copy of the store's rows."""

    def __init__(self, tables: Mapping[str, pa.Table]) -> None:
        missing = {"orders", "customers"} - set(tables)
        if missing:
            raise ValueError(f"missing tables: {sorted(missing)}")
        self.arrow_tables = dict(tables)


PERFECT_HASH_BITS = 21


class DuckDBEngine(_ArrowEngine):
    """DuckDB in memory: the local columnar engine."""

    name = "duckdb"

    def __init__(self, tables: Mapping[str, pa.Table], *, threads: int | None = None) -> None:
        super().__init__(tables)
        self.connection = ibis.duckdb.connect(threads=threads) if threads else ibis.duckdb.connect()
        raw = self.connection.con
        # Group by customer id with a direct-indexed table when the ids span up to 2^21 values
        # (DuckDB's default stops at 2^12): the per-customer aggregation of 10M orders over 1M
        # customers then costs 15-20 % less CPU. Wider ranges fall back to the hash table.
        raw.execute(f"SET perfect_ht_threshold = {PERFECT_HASH_BITS}")
        for name, arrow in self.arrow_tables.items():
            # Ibis 12's create_table emits SQL that DuckDB 2.0 rejects; load through DuckDB itself.
            raw.register(f"arrow_{name}", arrow)
            columns = ", ".join(
                _duckdb_column(raw, name, arrow, column) for column in arrow.schema.names
            )
            raw.execute(
                f'CREATE OR REPLACE TABLE "{name}" AS SELECT {columns} FROM "arrow_{name}"'
            ).fetchall()
            raw.unregister(f"arrow_{name}")

    def table(self, name: str) -> ir.Table:
        """Return a table loaded into DuckDB."""
        return self.connection.table(name)

    def sql(self, expression: ir.Expr) -> str:
        """Return the DuckDB SQL of `expression` (compile once, run many times)."""
        return str(ibis.to_sql(expression, dialect="duckdb"))

    def run(self, sql: str) -> pa.Table:
        """Run compiled SQL and return an Arrow table."""
        return self.connection.con.sql(sql).to_arrow_table()

    def to_arrow(self, expression: ir.Table) -> pa.Table:
        """Run `expression` and return an Arrow table."""
        return self.run(self.sql(expression))

    def _rows(self, expression: ir.Table) -> list[tuple[Any, ...]]:
        arrow = self.to_arrow(expression)
        columns = [arrow.column(index).to_pylist() for index in range(arrow.num_columns)]
        return list(zip(*columns, strict=True)) if columns else []

    def fetch(self, expression: ir.Table) -> list[dict[str, Any]]:
        """Run `expression`; rows with the values `normalise` gives, converted a column at a time.

        (Arrow already yields plain ints, strings, dates and booleans; only timestamps and floats
        need a look, so 1M rows of scores are not 21M calls of `normalise`.)
        """
        arrow = self.to_arrow(expression)
        schema = expression.schema()
        columns = []
        for name in schema.names:
            kind = schema[name]
            values = arrow.column(name).to_pylist()
            if kind.is_timestamp() or kind.is_floating() or kind.is_decimal():
                values = [normalise(value, kind) for value in values]
            columns.append(values)
        names = list(schema.names)
        return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]

    def quintile_bounds(self, measures: ir.Table) -> QuintileBounds:
        """Return the quintile bounds of `scoring.buyer_measures` rows (NumPy selection: O(n))."""
        arrow = self.to_arrow(measures)
        return quintile_bounds({name: arrow.column(name).to_numpy() for name in arrow.schema.names})

    def close(self) -> None:
        """Close the DuckDB connection."""
        self.connection.disconnect()


# Low-cardinality text that the definitions only test for membership: stored as a DuckDB ENUM,
# `status IN (…)` compares small integers instead of strings (the order filter costs a third).
_ENUM_COLUMNS = {("orders", "status")}


def _duckdb_column(raw: Any, table: str, arrow: pa.Table, column: str) -> str:
    """The SELECT item loading `column`: as is, or cast to an ENUM of its values in text order."""
    if (table, column) not in _ENUM_COLUMNS or not pa.types.is_string(
        arrow.schema.field(column).type
    ):
        return f'"{column}"'
    values = pc.unique(arrow.column(column).drop_null()).to_pylist()
    if not values:
        return f'"{column}"'
    labels = ", ".join("'" + value.replace("'", "''") + "'" for value in sorted(values))
    kind = f"{table}_{column}_enum"
    raw.execute(f'CREATE TYPE "{kind}" AS ENUM ({labels})').fetchall()
    return f'CAST("{column}" AS "{kind}") AS "{column}"'


class SparkEngine(_ArrowEngine):
    """Apache Spark (PySpark) in local mode, for stores that outgrow one machine's engines."""

    name = "spark"

    def __init__(self, tables: Mapping[str, pa.Table], *, spark: Any | None = None) -> None:
        super().__init__(tables)
        self.spark = spark or local_spark_session()
        for name, arrow in self.arrow_tables.items():
            frame = self.spark.createDataFrame(
                arrow.to_pandas(), schema=_spark_schema(SCHEMAS[name], arrow.schema)
            )
            frame.createOrReplaceTempView(name)
        self.connection = ibis.pyspark.connect(self.spark)

    def table(self, name: str) -> ir.Table:
        """Return a temporary view registered in Spark."""
        return self.connection.table(name)

    def _rows(self, expression: ir.Table) -> list[tuple[Any, ...]]:
        sql = str(ibis.to_sql(expression, dialect="pyspark"))
        return [tuple(row) for row in self.spark.sql(sql).collect()]


def local_spark_session() -> Any:
    """Return a small local Spark session in UTC (2 threads, no UI)."""
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.master("local[2]")
        .appName("patronage-analytics")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.default.parallelism", "1")
        .config("spark.sql.codegen.wholeStage", "false")
        .config("spark.sql.codegen.factoryMode", "NO_CODEGEN")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.memory", "1g")
        .getOrCreate()
    )


def _spark_schema(schema: ibis.Schema, arrow_schema: pa.Schema) -> Any:
    from pyspark.sql import types as spark_types

    kinds = {
        "int64": spark_types.LongType(),
        "string": spark_types.StringType(),
        "timestamp": spark_types.TimestampType(),
    }
    return spark_types.StructType(
        [
            spark_types.StructField(name, kinds[str(schema[name])], True)
            for name in arrow_schema.names
        ]
    )


# --- Exporting a store's rows ---------------------------------------------------------------

_EXPORTS: dict[str, tuple[Any, tuple[str, ...], str]] = {
    "orders": (Order, tuple(SCHEMAS["orders"].names), "store_id"),
    "customers": (Customer, tuple(SCHEMAS["customers"].names), "store_id"),
    "order_lines": (OrderLine, tuple(SCHEMAS["order_lines"].names), "store_id"),
    "events": (Event, tuple(SCHEMAS["events"].names), "store_id"),
}


def export_store_tables(session: Session, store_id: int) -> dict[str, pa.Table]:
    """Return the store's rows of the raw tables, only the columns the definitions read.

    Rows never become Python objects on PostgreSQL (COPY to CSV, parsed by Arrow) and only plain
    ones on SQLite (the driver's tuples, no ORM types); Arrow parses the timestamps, which travel
    as text. (Through SQLAlchemy rows and Python datetimes, 1M orders took 7-14 s to export.)
    """
    session.flush()  # the raw driver reads below must see the session's pending changes
    dialect = session.get_bind().dialect
    postgres = dialect.name == "postgresql"
    exported: dict[str, pa.Table] = {}
    for name, (model, columns, store_column) in _EXPORTS.items():
        table = table_of(model)
        schema = SCHEMAS[name]
        selected: list[Any] = []
        for column in columns:
            kind = schema[column]
            raw = table.c[column]
            if kind.is_timestamp():
                text_value = (
                    func.to_char(raw, "YYYY-MM-DD HH24:MI:SS.US")
                    if postgres
                    else type_coerce(raw, String())
                )
                selected.append(text_value.label(column))
            elif kind.is_integer():
                selected.append(type_coerce(raw, BigInteger()).label(column))
            else:
                selected.append(type_coerce(raw, String()).label(column))
        query = select(*selected).where(table.c[store_column] == store_id)
        sql = str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        driver = session.connection().connection.driver_connection
        exported[name] = (
            _copy_to_arrow(driver, sql, schema)
            if postgres
            else _fetch_to_arrow(driver, sql, schema)
        )
    return exported


def _text_schema(schema: ibis.Schema) -> pa.Schema:
    """The Arrow schema of `schema` with timestamps as text (parsed afterwards)."""
    return pa.schema(
        pa.field(field.name, pa.string() if pa.types.is_timestamp(field.type) else field.type)
        for field in schema.to_pyarrow()
    )


def _fetch_to_arrow(driver: Any, sql: str, schema: ibis.Schema) -> pa.Table:
    rows = driver.execute(sql).fetchall()
    text_schema = _text_schema(schema)
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in text_schema.names]
    arrays = [
        pa.array(values, type=field.type)
        for field, values in zip(text_schema, columns, strict=True)
    ]
    return _parse_timestamps(pa.Table.from_arrays(arrays, schema=text_schema), schema)


def _copy_to_arrow(driver: Any, sql: str, schema: ibis.Schema) -> pa.Table:
    with (
        driver.cursor() as cursor,
        cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)") as copy,
    ):
        data = b"".join(bytes(block) for block in copy)
    text_schema = _text_schema(schema)
    if not data:
        return _parse_timestamps(text_schema.empty_table(), schema)
    parsed = pa_csv.read_csv(
        io.BytesIO(data),
        read_options=pa_csv.ReadOptions(column_names=list(text_schema.names)),
        parse_options=pa_csv.ParseOptions(newlines_in_values=True),
        # PostgreSQL writes NULL unquoted and empty, an empty string as "".
        convert_options=pa_csv.ConvertOptions(
            column_types=text_schema,
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )
    return _parse_timestamps(parsed, schema)


def _parse_timestamps(table: pa.Table, schema: ibis.Schema) -> pa.Table:
    """Turn the text timestamps of `table` into naive UTC timestamps of `schema`."""
    arrow_schema = schema.to_pyarrow()
    arrays = []
    for field in arrow_schema:
        values = table.column(field.name)
        if pa.types.is_timestamp(field.type):
            try:
                values = values.cast(field.type)
            except pa.ArrowInvalid:  # not plain ISO text (e.g. with an offset): one by one
                values = pa.array(
                    [None if value is None else _naive_utc(value) for value in values.to_pylist()],
                    type=field.type,
                )
        arrays.append(values)
    return pa.Table.from_arrays(arrays, schema=arrow_schema)


def arrow_table(schema: ibis.Schema, rows: Sequence[Sequence[Any]]) -> pa.Table:
    """Build an Arrow table of `schema` from rows (naive timestamps are UTC)."""
    arrow_schema = schema.to_pyarrow()
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in arrow_schema.names]
    arrays = []
    for field, values in zip(arrow_schema, columns, strict=True):
        if pa.types.is_timestamp(field.type):
            values = tuple(
                _naive_utc(value) if isinstance(value, datetime | str) else value
                for value in values
            )
        arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=arrow_schema)


def _naive_utc(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


@contextmanager
def open_engine(
    session: Session, store_id: int, name: str = "database"
) -> Iterator[AnalyticsEngine]:
    """Open the engine called `name` on the store's data; close it afterwards."""
    engine: AnalyticsEngine
    if name == "database":
        engine = DatabaseEngine(session)
    elif name == "duckdb":
        engine = DuckDBEngine(export_store_tables(session, store_id))
    elif name == "spark":
        engine = SparkEngine(export_store_tables(session, store_id))
    else:
        raise ValueError(f"unknown engine {name!r}; choose one of {', '.join(ENGINE_NAMES)}")
    try:
        yield engine
    finally:
        engine.close()


# --- One value, whatever engine produced it ---------------------------------------------------


def normalise(value: Any, kind: dt.DataType) -> Any:
    """Return `value` as the plain Python value of Ibis type `kind` (None for any missing value)."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if type(value).__name__ in ("NaTType", "NAType"):
        return None
    if kind.is_boolean():
        return bool(value)
    if kind.is_integer():
        return int(value)
    if kind.is_floating():
        return float(value)
    if kind.is_timestamp():
        return _aware_utc(value)
    if kind.is_date():
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        if hasattr(value, "date"):
            return value.date()
        return date.fromisoformat(str(value)[:10])
    if kind.is_decimal() and isinstance(value, Decimal):
        return value
    if kind.is_string():
        return str(value)
    return value


def _aware_utc(value: Any) -> datetime:
    if isinstance(value, str):
        moment = datetime.fromisoformat(value)
    elif isinstance(value, datetime):
        moment = value
    elif hasattr(value, "to_pydatetime"):
        moment = value.to_pydatetime()
    else:
        raise TypeError(f"not a timestamp: {value!r}")
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
