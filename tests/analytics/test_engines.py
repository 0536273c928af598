"""The same definitions give the same results on SQLite, PostgreSQL, DuckDB and Spark."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy.orm import Session

from patronage.analytics import repository
from patronage.analytics.engines import (
    AnalyticsEngine,
    DatabaseEngine,
    DuckDBEngine,
    SparkEngine,
    export_store_tables,
    local_spark_session,
    normalise,
)
from patronage.analytics.kpis import KpiQuery, store_kpis
from patronage.analytics.scoring import ScoringSettings, aggregate_rows, full_score_rows
from patronage.analytics.service import rescore_store, store_zone_offsets
from patronage.db.engine import create_engine_for
from patronage.db.migrate import upgrade
from patronage.kit.clock import FrozenClock, get_clock, set_clock
from patronage.stores.service import create_store
from tests.analytics.analytics_fixture import AS_OF, FixtureStore, build_fixture_store
from tests.analytics.test_scoring import (  # noqa: F401 - fixtures
    EXPECTED,
    fixture_store,
    frozen_clock,
)


def scores_on(engine: AnalyticsEngine, session: Session, fixture: FixtureStore) -> dict[str, Any]:
    """The fixture's full scoring on `engine`, by customer name."""
    offsets, default = store_zone_offsets(session, fixture.store, AS_OF)
    expression = full_score_rows(
        engine.sources(),
        fixture.store.id,
        as_of=AS_OF,
        settings=ScoringSettings(),
        zone_offsets=offsets,
        default_offset=default,
        ranking=engine.ranking,
    )
    names = {customer_id: name for name, customer_id in fixture.ids.items()}
    return {names[row.pop("customer_id")]: row for row in engine.fetch(expression)}


def aggregates_on(engine: AnalyticsEngine, session: Session, fixture: FixtureStore) -> list[Any]:
    """The fixture's layer-1 aggregates on `engine`, sorted."""
    offsets, default = store_zone_offsets(session, fixture.store, AS_OF)
    rows = engine.fetch(aggregate_rows(engine.sources(), fixture.store.id, offsets, default))
    return sorted(rows, key=lambda row: row["customer_id"])


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    """One local Spark session for the module."""
    session = local_spark_session()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def test_duckdb_gives_the_database_results(session: Session, fixture_store: FixtureStore) -> None:  # noqa: F811
    database = DatabaseEngine(session)
    duckdb = DuckDBEngine(export_store_tables(session, fixture_store.store.id))
    try:
        assert scores_on(duckdb, session, fixture_store) == EXPECTED
        assert scores_on(database, session, fixture_store) == EXPECTED
        assert aggregates_on(duckdb, session, fixture_store) == aggregates_on(
            database, session, fixture_store
        )
        query = KpiQuery.for_dates(
            fixture_store.store.id, start=date(2026, 1, 1), end=date(2026, 6, 30)
        )
        assert store_kpis(duckdb, query) == store_kpis(database, query)
    finally:
        duckdb.close()


@pytest.fixture(scope="module")
def spark_fixture(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Session, FixtureStore]]:
    """The fixture store in a SQLite file of its own, so that Spark runs once, not per backend.

    (What Spark receives is an Arrow export; the other tests show SQLite and PostgreSQL export
    and score the same.)
    """
    previous = get_clock()
    set_clock(FrozenClock(AS_OF))
    engine = create_engine_for(f"sqlite:///{tmp_path_factory.mktemp('spark') / 'store.db'}")
    upgrade(engine)
    session = Session(engine)
    try:
        store = create_store(
            session, name="Spark", base_currency="USD", timezone="Asia/Shanghai", markets=[]
        ).store
        yield session, build_fixture_store(session, store)
    finally:
        session.close()
        engine.dispose()
        set_clock(previous)


@pytest.mark.slow
def test_spark_gives_the_database_results(
    spark_fixture: tuple[Session, FixtureStore], spark: Any
) -> None:
    session, fixture = spark_fixture
    engine = SparkEngine(export_store_tables(session, fixture.store.id), spark=spark)
    assert scores_on(engine, session, fixture) == EXPECTED


def test_rescoring_on_duckdb_stores_what_the_database_stores(
    session: Session,
    fixture_store: FixtureStore,  # noqa: F811
) -> None:
    store_id = fixture_store.store.id
    rescore_store(session, store_id, engine="duckdb", as_of=AS_OF)
    on_duckdb = repository.store_scores(session, store_id)
    aggregates = repository.store_aggregates(session, store_id)
    categories = repository.store_category_aggregates(session, store_id)
    rescore_store(session, store_id, engine="database", as_of=AS_OF)
    assert repository.store_scores(session, store_id) == on_duckdb
    assert repository.store_aggregates(session, store_id) == aggregates
    assert repository.store_category_aggregates(session, store_id) == categories


def test_an_unknown_engine_is_refused(session: Session, fixture_store: FixtureStore) -> None:  # noqa: F811
    with pytest.raises(ValueError, match="unknown engine"):
        rescore_store(session, fixture_store.store.id, engine="excel", as_of=AS_OF)


def test_values_are_normalised_the_same_way() -> None:
    import ibis.expr.datatypes as dt

    assert normalise("2026-06-01 12:00:00.000000", dt.timestamp) == AS_OF.replace(month=6, day=1)
    assert normalise("2026-06-11", dt.date) == date(2026, 6, 11)
    assert normalise(float("nan"), dt.float64) is None
    assert normalise(1, dt.boolean) is True
