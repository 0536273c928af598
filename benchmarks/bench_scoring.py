"""Full RFM + lifecycle scoring of every customer from the order table, and incremental rescoring.

    python -m benchmarks.bench_scoring --case CASE --customers N --orders M

Cases (each prints ONE JSON object with the fields of `benchmarks.common.Result`):
- `patronage-duckdb`: the Ibis definitions (`scoring.full_score_rows`) on DuckDB, which holds
  the store's orders and customers as native tables (loaded from Arrow before the clock starts);
- `patronage-sqlite`, `patronage-postgresql`: the same expression compiled to SQL and run inside the
  store's database, results fetched;
- `pandas`: the baseline, a straightforward pandas groupby of the same definitions over the same
  orders in a DataFrame;
- `incremental`: aggregates kept in DuckDB; a batch of new orders arrives, the aggregates of the
  customers who ordered are refreshed and every customer is rescored from the aggregates. The
  result is checked to equal a full recomputation over all orders (outside the clock).
The synthetic store is deterministic (seeded): skewed purchase propensities, three years of
orders, some cancelled, unpaid and refunded orders, five markets.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa

from benchmarks.common import POSTGRES_ADMIN, Result, peak_rss_mb

BENCHMARK = "Customer scoring: RFM + lifecycle of every customer from the order table"
AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
YEARS = 3
STATUSES = np.array(
    ["paid", "shipped", "delivered", "partially_refunded", "refunded", "cancelled", "placed"]
)
STATUS_WEIGHTS = np.array([0.10, 0.05, 0.74, 0.03, 0.03, 0.03, 0.02])
MARKETS = np.array(["US", "DE", "FR", "GB", "JP"])
STORE_ID = 1
BATCH_SHARE = 0.001  # incremental: new orders as a share of all orders
REPEAT = 3  # full scorings (Patronage and pandas alike) report the best of this many runs
T = TypeVar("T")


def synthetic_store(customers: int, orders: int, seed: int = 7) -> dict[str, pa.Table]:
    """Return the deterministic store, generated once and then read from a Parquet cache."""
    import pyarrow.parquet as pq

    directory = os.path.join(
        os.environ.get("PATRONAGE_BENCH_CACHE", tempfile.gettempdir()),
        f"patronage-scoring-{customers}-{orders}-{seed}",
    )
    names = ("orders", "customers")
    if all(os.path.exists(os.path.join(directory, f"{name}.parquet")) for name in names):
        return {name: pq.read_table(os.path.join(directory, f"{name}.parquet")) for name in names}
    tables = generate_store(customers, orders, seed)
    os.makedirs(directory, exist_ok=True)
    for name in names:
        partial = os.path.join(directory, f"{name}.parquet.{os.getpid()}")
        pq.write_table(tables[name], partial)
        os.replace(partial, os.path.join(directory, f"{name}.parquet"))  # atomic for parallel runs
    return tables


def generate_store(customers: int, orders: int, seed: int = 7) -> dict[str, pa.Table]:
    """Return deterministic `orders` and `customers` Arrow tables of one store."""
    rng = np.random.default_rng(seed)
    propensity = rng.gamma(shape=0.6, scale=1.0, size=customers)
    propensity /= propensity.sum()
    customer_of_order = rng.choice(customers, size=orders, p=propensity) + 1
    start = int(AS_OF.timestamp()) - YEARS * 365 * 86_400
    placed = start + rng.integers(0, YEARS * 365 * 86_400, size=orders)
    total = (np.exp(rng.normal(3.8, 0.7, size=orders)) * 100).astype(np.int64) * 100
    status = rng.choice(STATUSES, size=orders, p=STATUS_WEIGHTS)
    refunded = np.where(
        status == "refunded",
        total,
        np.where(status == "partially_refunded", (total // 3 // 100) * 100, 0),
    ).astype(np.int64)
    order_table = pa.table(
        {
            "id": pa.array(np.arange(1, orders + 1, dtype=np.int64)),
            "store_id": pa.array(np.full(orders, STORE_ID, dtype=np.int64)),
            "customer_id": pa.array(customer_of_order.astype(np.int64)),
            "status": pa.array(status.astype(object), type=pa.string()),
            "market": pa.array(rng.choice(MARKETS, size=orders).astype(object), type=pa.string()),
            "total_base": pa.array(total),
            "refunded_base": pa.array(refunded),
            "placed_at": pa.array(placed * 1_000_000, type=pa.timestamp("us")),
        }
    )
    customer_table = pa.table(
        {
            "id": pa.array(np.arange(1, customers + 1, dtype=np.int64)),
            "store_id": pa.array(np.full(customers, STORE_ID, dtype=np.int64)),
            "merged_into_id": pa.array([None] * customers, type=pa.int64()),
            "timezone": pa.array(["UTC"] * customers, type=pa.string()),
        }
    )
    return {"orders": order_table, "customers": customer_table}


@dataclass(frozen=True)
class Timing:
    """One run: wall-clock seconds, CPU seconds (every thread, server included), memory added."""

    seconds: float
    cpu: float
    added_mb: float  # peak resident memory during the run above what the process held before

    def __str__(self) -> str:
        return f"{self.seconds:.3f} s (CPU {self.cpu:.2f} s, +{self.added_mb:,.0f} MiB)"


@contextmanager
def clocks(server_pid: int | None = None) -> Iterator[Callable[[], Timing]]:
    """Time the block: wall clock, the CPU of this process plus `server_pid`'s, memory added."""

    def cpu() -> float:
        return time.process_time() + (_process_cpu(server_pid) if server_pid else 0.0)

    before = _resident_mb()
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            peak[0] = max(peak[0], _resident_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    wall, used = time.perf_counter(), cpu()
    measured: list[Timing] = []
    try:
        yield lambda: measured[0]
    finally:
        seconds, spent = time.perf_counter() - wall, cpu() - used
        done.set()
        sampler.join()
        peak[0] = max(peak[0], _resident_mb())
        measured.append(Timing(seconds, spent, peak[0] - before))


def _resident_mb() -> float:
    """Resident memory of this process now, in MiB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process on this machine (/proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- The pandas baseline ------------------------------------------------------------------


def pandas_scores(orders: pd.DataFrame, customers: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    """The same RFM + lifecycle definitions as a straightforward pandas groupby."""
    from patronage.analytics.scoring import REVENUE_STATUSES, SEGMENT_GRID, ScoringSettings

    settings = ScoringSettings()
    paid = orders[orders["status"].isin(REVENUE_STATUSES)]
    net = paid["total_base"] - paid["refunded_base"]
    frame = pd.DataFrame(
        {
            "customer_id": paid["customer_id"],
            "seconds": paid["placed_at"].astype("int64") // 1_000_000,
            "gross": paid["total_base"],
            "net": net,
            "purchase": (net > 0).astype("int64"),
        }
    )
    frame["purchase_seconds"] = frame["seconds"].where(frame["purchase"] == 1)
    grouped = frame.groupby("customer_id").agg(
        order_count=("purchase", "sum"),
        first_seconds=("purchase_seconds", "min"),
        last_seconds=("purchase_seconds", "max"),
        gross_revenue=("gross", "sum"),
        net_revenue=("net", "sum"),
    )
    scores = customers[["id"]].rename(columns={"id": "customer_id"}).join(grouped, on="customer_id")
    scores["order_count"] = scores["order_count"].fillna(0).astype("int64")
    scores["gross_revenue"] = scores["gross_revenue"].fillna(0).astype("int64")
    scores["net_revenue"] = scores["net_revenue"].fillna(0).astype("int64")
    buyer = scores["order_count"] > 0
    now = int(as_of.timestamp())
    recency = (now - scores["last_seconds"]) // 86_400
    tenure = (now - scores["first_seconds"]) // 86_400
    buyers = scores[buyer]
    population = len(buyers)

    def quintile(values: pd.Series, ascending: bool) -> pd.Series:
        rank = values.rank(method="min", ascending=ascending) - 1
        return (1 + (rank * 5) // population).astype("Int64")

    scores["recency_days"] = recency.astype("Int64")
    scores["recency_score"] = quintile(recency[buyer], ascending=False)
    scores["frequency_score"] = quintile(buyers["order_count"], ascending=True)
    scores["monetary_score"] = quintile(buyers["net_revenue"], ascending=True)
    fm_total = scores["frequency_score"] + scores["monetary_score"]
    segment = pd.Series(pd.NA, index=scores.index, dtype="object")
    for (low, high), names in SEGMENT_GRID.items():
        for recency_score, name in enumerate(names, start=1):
            chosen = (scores["recency_score"] == recency_score) & fm_total.between(low, high)
            segment[chosen.fillna(False).astype(bool)] = name
    scores["rfm_segment"] = segment
    repeat = scores["order_count"] >= 2
    scores["lifecycle_stage"] = np.select(
        [
            ~buyer,
            recency > settings.churned_days,
            recency > settings.dormant_days,
            recency > settings.at_risk_days,
            repeat,
            tenure <= settings.new_days,
        ],
        ["prospect", "churned", "dormant", "at_risk", "repeat", "new"],
        default="active",
    )
    span = scores["last_seconds"] - scores["first_seconds"]
    gaps = scores["order_count"] - 1
    scores["average_repurchase_interval_days"] = (span / (gaps * 86_400)).where(repeat)
    scores["orders_per_year"] = (scores["order_count"] * 365 / np.maximum(tenure, 365)).where(buyer)
    scores["average_order_value"] = (scores["net_revenue"] // scores["order_count"]).where(buyer)
    next_seconds = scores["last_seconds"] + span // gaps
    scores["expected_next_order_date"] = pd.to_datetime(
        next_seconds.where(repeat), unit="s"
    ).dt.date
    return scores


# --- Cases ----------------------------------------------------------------------------------


COMPARED = (
    "customer_id",
    "order_count",
    "recency_days",
    "gross_revenue",
    "net_revenue",
    "recency_score",
    "frequency_score",
    "monetary_score",
    "rfm_segment",
    "lifecycle_stage",
    "average_repurchase_interval_days",
    "orders_per_year",
)


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    chosen = frame[list(COMPARED)].sort_values("customer_id").reset_index(drop=True)
    return chosen.astype(object).where(chosen.notna(), None)


def _duckdb_scoring_sql(engine: Any) -> str:
    from patronage.analytics.scoring import ScoringSettings, full_score_rows

    expression = full_score_rows(
        engine.sources(with_lines=False, with_events=False),
        STORE_ID,
        as_of=AS_OF,
        settings=ScoringSettings(),
        zone_offsets={},
        default_offset=0,
    )
    return str(engine.sql(expression))


def case_duckdb(tables: dict[str, pa.Table]) -> tuple[Timing, pd.DataFrame, str]:
    """Full scoring on DuckDB, from its tables to an Arrow table of scores."""
    from patronage.analytics.engines import DuckDBEngine

    engine = DuckDBEngine(tables)
    with clocks() as compiling:
        sql = _duckdb_scoring_sql(engine)
    timing, result = _best_of(REPEAT, lambda: engine.run(sql))
    note = (
        f"Ibis builds and compiles the query once in {compiling().seconds:.2f} s (not timed); "
        f"best of {REPEAT}"
    )
    return timing, result.to_pandas(), note


def case_pandas(tables: dict[str, pa.Table]) -> tuple[Timing, pd.DataFrame]:
    """The pandas baseline, from DataFrames of the orders and customers to a DataFrame of scores."""
    orders = tables["orders"].to_pandas()
    customers = tables["customers"].to_pandas()
    return _best_of(REPEAT, lambda: pandas_scores(orders, customers, AS_OF))


def _best_of(times: int, work: Callable[[], T]) -> tuple[Timing, T]:
    """Run `work` `times` times; return the fastest run's timing and the last result."""
    best: Timing | None = None
    result: T | None = None
    for _ in range(times):
        with clocks() as measured:
            result = work()
        if best is None or measured().seconds < best.seconds:
            best = measured()
    assert result is not None and best is not None
    return best, result


def case_incremental(tables: dict[str, pa.Table]) -> tuple[Timing, pd.DataFrame, str]:
    """Refresh kept aggregates after a batch of new orders, rescore selectively; check it.

    The store was scored in full before the batch (its quintile bounds and category values kept,
    as `customer_score_runs` keeps them). The statements are compiled once beforehand, with
    marker numbers for the bounds (as the database path caches its refresh statements). The
    clock covers: refreshing the aggregates of the customers who ordered; the new quintile
    bounds of all buyers (NumPy selection over their three measures); choosing the customers
    whose scores can change (those who ordered, the buyers between an old and a new bound, repeat
    buyers of a category whose average moved, customers added or merged); rescoring only them
    into the kept scores. The kept scores are then checked to equal a full recomputation.
    """
    from patronage.analytics.engines import DuckDBEngine
    from patronage.analytics.scoring import (
        ScoringSettings,
        aggregate_rows,
        buyer_measures,
        category_rows,
        category_values,
        crossing_ids,
        fill_bounds,
        marker_bounds,
        moved_bounds,
        quintile_bounds,
        score_rows,
    )

    orders = tables["orders"]
    batch = max(1, int(orders.num_rows * BATCH_SHARE))
    before, new = orders.slice(0, orders.num_rows - batch), orders.slice(orders.num_rows - batch)
    engine = DuckDBEngine({"orders": before, "customers": tables["customers"]})
    raw = engine.connection.con
    sources = engine.sources(with_lines=False, with_events=False)
    _create(raw, "customer_aggregates", engine.to_arrow(aggregate_rows(sources, STORE_ID, {}, 0)))
    _create(raw, "customer_category_aggregates", engine.to_arrow(category_rows(sources, STORE_ID)))
    raw.execute("CREATE TABLE touched_customers (customer_id BIGINT)").fetchall()
    raw.execute("CREATE TABLE affected_customers (customer_id BIGINT)").fetchall()
    customers = engine.table("customers")
    aggregates = engine.table("customer_aggregates")
    categories = engine.table("customer_category_aggregates")
    settings = ScoringSettings()
    refresh_sql = engine.sql(
        aggregate_rows(sources, STORE_ID, {}, 0, customer_ids=engine.table("touched_customers"))
    )
    full_sql = engine.sql(
        score_rows(customers, STORE_ID, aggregates, categories, as_of=AS_OF, settings=settings)
    )
    measures = buyer_measures(customers, STORE_ID, aggregates, AS_OF)
    measures_sql = engine.sql(measures)
    values_sql = engine.sql(category_values(categories, customers, STORE_ID))
    markers = marker_bounds(7_340_032_300)
    selective_sql = engine.sql(
        score_rows(
            customers, STORE_ID, aggregates, categories, as_of=AS_OF, settings=settings,
            bounds=markers, customer_ids=engine.table("affected_customers"),
        )
    )  # fmt: skip

    def measures_now() -> dict[str, Any]:
        arrow = raw.sql(measures_sql).to_arrow_table()
        return {name: arrow.column(name).to_numpy() for name in arrow.column_names}

    def category_values_now() -> dict[str, tuple[int, int]]:
        return {row[0]: (row[1], row[2]) for row in raw.sql(values_sql).fetchall()}

    _create(raw, "customer_scores", engine.run(full_sql))  # the scores kept before the batch
    kept_bounds, kept_values = quintile_bounds(measures_now()), category_values_now()
    raw.register("new_orders", new)
    raw.execute("INSERT INTO orders SELECT * FROM new_orders").fetchall()
    # The direct-indexed aggregation that speeds up grouping all 10M orders by customer costs
    # a table over the whole id range for each group-by; 10,000 customers group faster without
    # it (the refresh: 0.33 s of CPU with it, 0.09 s without).
    raw.execute("SET perfect_ht_threshold = 12").fetchall()
    with clocks() as elapsed:
        raw.execute("INSERT INTO touched_customers SELECT DISTINCT customer_id FROM new_orders")
        raw.execute(
            "DELETE FROM customer_aggregates WHERE customer_id IN "
            "(SELECT customer_id FROM touched_customers)"
        )
        raw.execute(f"INSERT INTO customer_aggregates {refresh_sql}")
        arrays = measures_now()
        bounds = quintile_bounds(arrays)
        values = category_values_now()
        changed = sorted(
            name for name in set(values) | set(kept_values)
            if values.get(name) != kept_values.get(name)
        )  # fmt: skip
        low, high = moved_bounds(kept_bounds, bounds)
        crossing = pa.table({"customer_id": crossing_ids(arrays, low, high)})
        # Live customers without kept scores and merged ones with them: counted first, as a
        # store rarely has any (the anti-join only runs when the counts say there are some).
        (live, kept, merged_kept) = raw.execute(
            "SELECT (SELECT count(*) FROM customers WHERE store_id = $store "
            "AND merged_into_id IS NULL), (SELECT count(*) FROM customer_scores), "
            "(SELECT count(*) FROM customer_scores WHERE customer_id IN (SELECT id FROM customers "
            "WHERE store_id = $store AND merged_into_id IS NOT NULL))",
            {"store": STORE_ID},
        ).fetchall()[0]
        unmatched = (
            "UNION SELECT c.id FROM customers AS c "
            "LEFT JOIN customer_scores AS s ON s.customer_id = c.id "
            "WHERE c.store_id = $store AND (c.merged_into_id IS NULL) = (s.customer_id IS NULL)"
            if merged_kept or kept != live
            else ""
        )
        raw.register("crossing_customers", crossing)
        raw.execute(
            "INSERT INTO affected_customers "
            "SELECT customer_id FROM touched_customers "
            "UNION SELECT customer_id FROM crossing_customers "
            "UNION SELECT customer_id FROM customer_scores "
            f"WHERE order_count >= 2 AND list_contains($changed, preferred_category_1) {unmatched}",
            {"changed": changed, **({"store": STORE_ID} if unmatched else {})},
        )
        raw.execute(
            "DELETE FROM customer_scores WHERE customer_id IN "
            "(SELECT customer_id FROM affected_customers)"
        )
        raw.execute(f"INSERT INTO customer_scores {fill_bounds(selective_sql, markers, bounds)}")
    touched = raw.execute("SELECT count(*) FROM touched_customers").fetchall()[0][0]
    affected = raw.execute("SELECT count(*) FROM affected_customers").fetchall()[0][0]
    incremental = raw.sql("SELECT * FROM customer_scores").to_arrow_table().to_pandas()
    full = engine.run(_duckdb_scoring_sql(engine)).to_pandas()
    identical = _comparable(incremental).equals(_comparable(full))
    moved = sum(
        old != now
        for name in ("recency_days", "order_count", "net_revenue")
        for old, now in zip(getattr(kept_bounds, name), getattr(bounds, name), strict=True)
    )
    note = (
        f"{batch:,} new orders from {touched:,} customers; {moved} of 12 quintile bounds moved; "
        f"{affected:,} customers rescored selectively; "
        f"identical to a full recomputation: {'yes' if identical else 'NO'}"
    )
    if not identical:
        raise SystemExit("incremental rescoring differs from the full recomputation")
    return elapsed(), incremental, note


def _create(raw: Any, name: str, arrow: pa.Table) -> None:
    raw.register(f"arrow_{name}", arrow)
    raw.execute(f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM "arrow_{name}"').fetchall()
    raw.unregister(f"arrow_{name}")


def case_database(tables: dict[str, pa.Table], backend: str) -> tuple[Timing, pd.DataFrame, str]:
    """Full scoring inside SQLite or PostgreSQL, as `analyze --rescore` runs it there.

    Layer 1 is written into an indexed `customer_aggregates` table, then layer 2 reads it (the
    one-expression form makes SQLite's planner join unindexed subqueries in nested loops).
    """
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    from patronage.analytics.engines import DatabaseEngine
    from patronage.analytics.repository import (
        aggregates_table,
        categories_table,
        refresh_statistics,
    )
    from patronage.analytics.scoring import ScoringSettings, aggregate_rows, score_rows
    from patronage.db.engine import create_engine_for

    url, cleanup = _fresh_database(backend)
    try:
        engine = create_engine_for(url)
        _load(engine, tables)
        with Session(engine) as session:
            database = DatabaseEngine(session)
            sources = database.sources(with_lines=False, with_events=False)
            layer_one = database.sql(aggregate_rows(sources, STORE_ID, {}, 0))
            layer_two = score_rows(
                database.table("customers"),
                STORE_ID,
                database.table("customer_aggregates"),
                database.table("customer_category_aggregates"),
                as_of=AS_OF,
                settings=ScoringSettings(),
                ranking=database.ranking,
            )
            server = None
            if backend == "postgresql":
                server = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with clocks(server) as elapsed:
                session.execute(text(f"INSERT INTO customer_aggregates {layer_one}"))
                refresh_statistics(session, [aggregates_table, categories_table])
                rows = database.fetch(layer_two)
            session.rollback()
        engine.dispose()
    finally:
        cleanup()
    return elapsed(), pd.DataFrame(rows), url.split(":")[0]


def case_database_incremental(
    tables: dict[str, pa.Table], backend: str
) -> tuple[Timing, pd.DataFrame, str]:
    """Incremental rescoring inside SQLite or PostgreSQL, as the store runs it after new orders.

    The clock covers what `refresh_customer_aggregates` runs for the customers with new orders
    (delete their kept rows; its two compiled INSERT … SELECT statements, 1,000 customers at a
    time, reading their orders through the `(store_id, customer_id, placed_at)` index) and then
    scoring every customer from the kept aggregates. Checked against a full recomputation.
    """
    from sqlalchemy import MetaData, Table, text
    from sqlalchemy.orm import Session

    from patronage.analytics.aggregates import REFRESH_CHUNK, _refresh_statements
    from patronage.analytics.engines import DatabaseEngine
    from patronage.analytics.repository import (
        aggregates_table,
        categories_table,
        chunks,
        delete_customer_rows,
        insert_arrow,
        refresh_statistics,
    )
    from patronage.analytics.scoring import (
        AGGREGATE_COLUMNS,
        ScoringSettings,
        aggregate_rows,
        score_rows,
    )
    from patronage.db.engine import create_engine_for

    orders = tables["orders"]
    batch = max(1, int(orders.num_rows * BATCH_SHARE))
    before, new = orders.slice(0, orders.num_rows - batch), orders.slice(orders.num_rows - batch)
    touched = sorted(set(new.column("customer_id").to_pylist()))
    url, cleanup = _fresh_database(backend)
    try:
        engine = create_engine_for(url)
        _load(engine, {"orders": before, "customers": tables["customers"]})
        timestamp = "TIMESTAMP" if backend == "postgresql" else "DATETIME"
        with engine.begin() as connection:  # what the refresh statements read besides orders
            connection.execute(
                text("CREATE TABLE order_lines (order_id BIGINT, store_id BIGINT, category TEXT)")
            )
            connection.execute(
                text(
                    "CREATE TABLE events (store_id BIGINT, customer_id BIGINT, "
                    f"anonymous_id TEXT, name TEXT, occurred_at {timestamp})"
                )
            )
            connection.execute(
                text(f"ALTER TABLE customer_aggregates ADD COLUMN refreshed_at {timestamp}")
            )
        with Session(engine) as session:
            database = DatabaseEngine(session)
            sources = database.sources(with_lines=False, with_events=False)
            columns = ", ".join(AGGREGATE_COLUMNS)
            layer_one = f"INSERT INTO customer_aggregates ({columns}) " + database.sql(
                aggregate_rows(sources, STORE_ID, {}, 0)
            )
            layer_two = score_rows(
                database.table("customers"),
                STORE_ID,
                database.table("customer_aggregates"),
                database.table("customer_category_aggregates"),
                as_of=AS_OF,
                settings=ScoringSettings(),
                ranking=database.ranking,
            )
            session.execute(text(layer_one))
            refresh_statistics(session, [aggregates_table, categories_table])
            insert_arrow(session, Table("orders", MetaData()), new, {})
            aggregates_sql, categories_sql = _refresh_statements(database.dialect, (), 0)
            server = None
            if backend == "postgresql":
                server = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with clocks(server) as elapsed:
                for chunk in chunks(touched, REFRESH_CHUNK):
                    ids = list(chunk)
                    delete_customer_rows(session, aggregates_table, STORE_ID, ids)
                    delete_customer_rows(session, categories_table, STORE_ID, ids)
                    parameters = {"store_id": STORE_ID, "customer_ids": ids, "refreshed_at": AS_OF}
                    session.execute(aggregates_sql, parameters)
                    session.execute(categories_sql, {"store_id": STORE_ID, "customer_ids": ids})
                rows = database.fetch(layer_two)
            session.execute(text("DELETE FROM customer_aggregates"))
            session.execute(text(layer_one))
            full = database.fetch(layer_two)
            session.rollback()
        engine.dispose()
    finally:
        cleanup()
    incremental = pd.DataFrame(rows)
    identical = _comparable(incremental).equals(_comparable(pd.DataFrame(full)))
    if not identical:
        raise SystemExit("incremental rescoring differs from the full recomputation")
    note = (
        f"{batch:,} new orders from {len(touched):,} customers; refresh + rescore of every "
        "customer; identical to a full recomputation: yes"
    )
    return elapsed(), incremental, note


def _fresh_database(backend: str) -> tuple[str, Any]:
    if backend == "sqlite":
        directory = tempfile.mkdtemp(prefix="bench-scoring-")
        path = os.path.join(directory, "store.db")

        def remove() -> None:
            if os.path.exists(path):
                os.remove(path)

        return f"sqlite:///{path}", remove
    import psycopg

    name = f"bench_scoring_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")

    def drop() -> None:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"{base}/{name}", drop


def _load(engine: Any, tables: dict[str, pa.Table]) -> None:
    """Create bare `orders` and `customers` tables with the columns scoring reads; load them."""
    from sqlalchemy import text

    orders, customers = tables["orders"], tables["customers"]
    timestamp = "TIMESTAMP" if engine.dialect.name == "postgresql" else "DATETIME"
    with engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TABLE customers (id BIGINT PRIMARY KEY, store_id BIGINT, "
                "merged_into_id BIGINT, timezone VARCHAR(64))"
            )
        )
        connection.execute(
            text(
                "CREATE TABLE orders (id BIGINT PRIMARY KEY, store_id BIGINT, customer_id BIGINT, "
                f"status VARCHAR(24), market VARCHAR(2), total_base BIGINT, refunded_base BIGINT, "
                f"placed_at {timestamp})"
            )
        )
        raw = connection.connection.driver_connection
        if engine.dialect.name == "postgresql":
            with raw.cursor() as cursor:  # type: ignore[union-attr]
                for name, table in (("customers", customers), ("orders", orders)):
                    columns = ", ".join(table.column_names)
                    with cursor.copy(f"COPY {name} ({columns}) FROM STDIN") as copy:
                        for row in zip(
                            *(table.column(c).to_pylist() for c in table.column_names), strict=True
                        ):
                            copy.write_row(row)
        else:
            placed = [
                moment.strftime("%Y-%m-%d %H:%M:%S.%f")
                for moment in orders.column("placed_at").to_pylist()
            ]
            order_rows = zip(
                *(orders.column(c).to_pylist() for c in orders.column_names[:-1]),
                placed,
                strict=True,
            )
            statement = "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            raw.executemany(statement, order_rows)  # type: ignore[union-attr]
            raw.executemany(  # type: ignore[union-attr]
                "INSERT INTO customers VALUES (?, ?, ?, ?)",
                zip(
                    *(customers.column(c).to_pylist() for c in customers.column_names), strict=True
                ),
            )
        connection.execute(
            text("CREATE INDEX ix_orders_customer ON orders (store_id, customer_id, placed_at)")
        )
        if engine.dialect.name == "postgresql":
            connection.execute(text("ANALYZE orders, customers"))  # as autovacuum would have
        connection.execute(
            text(
                "CREATE TABLE customer_aggregates (customer_id BIGINT PRIMARY KEY, "
                f"order_count BIGINT, first_order_at {timestamp}, last_order_at {timestamp}, "
                "gross_revenue BIGINT, net_revenue BIGINT, best_contact_hour BIGINT)"
            )
        )
        connection.execute(
            text(
                "CREATE TABLE customer_category_aggregates (customer_id BIGINT, "
                "category VARCHAR(200), order_count BIGINT, net_revenue BIGINT, "
                "PRIMARY KEY (customer_id, category))"
            )
        )


def main() -> None:
    """Run one case and print its Result as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--case",
        required=True,
        choices=["patronage-duckdb", "patronage-sqlite", "patronage-postgresql", "pandas",
                 "incremental", "incremental-sqlite", "incremental-postgresql"],
    )  # fmt: skip
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--check", action="store_true", help="also compare with the pandas result")
    options = parser.parse_args()
    tables = synthetic_store(options.customers, options.orders)
    note = ""
    backend = "—"
    if options.case == "patronage-duckdb":
        timing, result, note = case_duckdb(tables)
        variant, backend = "Patronage (Ibis on DuckDB)", "duckdb"
    elif options.case == "pandas":
        timing, result = case_pandas(tables)
        variant = "baseline: pandas groupby"
        note = f"best of {REPEAT}"
    elif options.case == "incremental":
        timing, result, note = case_incremental(tables)
        variant, backend = "Patronage incremental (kept aggregates, DuckDB)", "duckdb"
    elif options.case.startswith("incremental-"):
        backend = options.case.removeprefix("incremental-")
        timing, result, note = case_database_incremental(tables, backend)
        variant = f"Patronage incremental (kept aggregates, in the {backend} database)"
        if backend == "postgresql":
            note += "; CPU includes the server backend (not parallel workers)"
    else:
        backend = options.case.removeprefix("patronage-")
        timing, result, _ = case_database(tables, backend)
        variant = f"Patronage (Ibis compiled to {backend} SQL, in the database)"
        if backend == "postgresql":
            note = "CPU includes the server backend (not parallel workers)"
    seconds = timing.seconds
    peak = peak_rss_mb()  # before any baseline run below: this case's own
    note = (
        f"CPU {timing.cpu:.2f} s; the run added {timing.added_mb:,.0f} MiB to a process holding "
        "the store" + (f"; {note}" if note else "")
    )
    target, factor = {
        "patronage-duckdb": ("≥ 2.5x faster than pandas", 2.5),
        "incremental": ("≥ 10x faster than the pandas full run", 10.0),
    }.get(options.case, ("", 0.0))
    met = None
    if options.check and options.case != "pandas":
        baseline_timing, baseline = case_pandas(tables)
        same = _comparable(result).equals(_comparable(baseline))
        speedup = baseline_timing.seconds / seconds if seconds else float("inf")
        cpu_ratio = baseline_timing.cpu / timing.cpu if timing.cpu else float("inf")
        note = (note + "; " if note else "") + (
            f"pandas in this process: {baseline_timing} ({speedup:.2g}x wall, "
            f"{cpu_ratio:.2g}x CPU); "
            f"same results as pandas: {'yes' if same else 'NO'}"
        )
        if factor:
            met = speedup >= factor and same
    print(
        json.dumps(
            asdict(
                Result(
                    benchmark=BENCHMARK,
                    variant=variant,
                    backend=backend,
                    items=options.orders,
                    unit="orders",
                    seconds=round(seconds, 4),
                    peak_mb=round(peak, 1),
                    target=target,
                    met=met,
                    note="; ".join(
                        part for part in (f"{options.customers:,} customers", note) if part
                    ),
                )
            )
        )
    )


if __name__ == "__main__":
    main()
