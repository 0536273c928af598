"""Rescoring a store: rebuild the kept aggregates, then score every customer from them."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.orm import Session

from patronage.analytics import repository
from patronage.analytics.engines import DatabaseEngine, DuckDBEngine, open_engine
from patronage.analytics.scoring import (
    AGGREGATE_COLUMNS,
    CATEGORY_COLUMNS,
    SCORE_COLUMNS,
    ScoringSettings,
    aggregate_rows,
    category_rows,
    full_score_rows,
    score_rows,
)
from patronage.db.types import UTCDateTime
from patronage.errors import ValidationFailedError
from patronage.kit.clock import utcnow
from patronage.stores.models import Store
from patronage.stores.service import get_store


@dataclass
class RescoreSummary:
    """What a rescoring did."""

    store_id: int
    engine: str
    as_of: datetime
    computed_at: datetime
    customers: int
    seconds: float
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Return the summary as JSON-ready values."""
        return {
            "store_id": self.store_id,
            "engine": self.engine,
            "as_of": self.as_of.isoformat(),
            "computed_at": self.computed_at.isoformat(),
            "customers": self.customers,
            "seconds": round(self.seconds, 3),
            "counts": self.counts,
        }


def settings_for(store: Store) -> ScoringSettings:
    """Return the store's scoring settings (`settings.analytics` overrides the defaults)."""
    try:
        return ScoringSettings.from_mapping((store.settings or {}).get("analytics"))
    except (TypeError, ValueError) as error:
        raise ValidationFailedError(f"bad analytics settings: {error}") from error


def zone_offsets(zones: Iterable[str], at: datetime) -> dict[str, int]:
    """Return the UTC offset in seconds of each known time zone at `at` (unknown ones left out)."""
    offsets: dict[str, int] = {}
    for zone in zones:
        try:
            offset = at.astimezone(ZoneInfo(zone)).utcoffset()
        except (ZoneInfoNotFoundError, ValueError):
            continue
        if offset is not None:
            offsets[zone] = int(offset.total_seconds())
    return offsets


def store_zone_offsets(session: Session, store: Store, at: datetime) -> tuple[dict[str, int], int]:
    """Return the offsets of the store's customers' zones and the store's own offset."""
    offsets = zone_offsets(repository.customer_time_zones(session, store.id), at)
    default = zone_offsets([store.timezone or "UTC"], at).get(store.timezone or "UTC", 0)
    return offsets, default


def rebuild_aggregates(session: Session, store: Store, *, zones_at: datetime | None = None) -> None:
    """Recompute the kept aggregates of every customer of the store, inside the database.

    Event hours are converted with each time zone's offset at `zones_at` (default: now).
    """
    moment = utcnow()
    offsets, default = store_zone_offsets(session, store, zones_at or moment)
    engine = DatabaseEngine(session)
    sources = engine.sources()
    repository.delete_store_rows(session, repository.aggregates_table, store.id)
    repository.delete_store_rows(session, repository.categories_table, store.id)
    engine.insert_select(
        "customer_aggregates",
        aggregate_rows(sources, store.id, offsets, default),
        columns=AGGREGATE_COLUMNS,
        constants={"refreshed_at": moment},
        constant_types={"refreshed_at": UTCDateTime()},
    )
    engine.insert_select(
        "customer_category_aggregates", category_rows(sources, store.id), columns=CATEGORY_COLUMNS
    )
    repository.refresh_statistics(
        session, [repository.aggregates_table, repository.categories_table]
    )


def score_from_aggregates(
    session: Session,
    store: Store,
    *,
    as_of: datetime | None = None,
    settings: ScoringSettings | None = None,
) -> RescoreSummary:
    """Replace the store's scores with ones computed from the kept aggregates, in the database."""
    started = time.perf_counter()
    computed_at = utcnow()
    moment = as_of or computed_at
    engine = DatabaseEngine(session)
    expression = score_rows(
        engine.table("customers"),
        store.id,
        engine.table("customer_aggregates"),
        engine.table("customer_category_aggregates"),
        as_of=moment,
        settings=settings or settings_for(store),
        ranking=engine.ranking,
    )
    repository.delete_store_rows(session, repository.scores_table, store.id)
    engine.insert_select(
        "customer_scores",
        expression,
        columns=SCORE_COLUMNS,
        constants={"computed_at": computed_at, "as_of": moment},
        constant_types={"computed_at": UTCDateTime(), "as_of": UTCDateTime()},
    )
    return _summary(session, store.id, engine.name, moment, computed_at, started)


def rescore_store(
    session: Session,
    store_id: int,
    *,
    engine: str = "database",
    as_of: datetime | None = None,
    settings: ScoringSettings | None = None,
) -> RescoreSummary:
    """Recompute the aggregates and scores of every customer of the store on `engine`."""
    store = get_store(session, store_id)
    chosen = settings or settings_for(store)
    if engine == "database":
        started = time.perf_counter()
        rebuild_aggregates(session, store, zones_at=as_of)
        summary = score_from_aggregates(session, store, as_of=as_of, settings=chosen)
        summary.seconds = time.perf_counter() - started
        return summary
    return _rescore_elsewhere(session, store, engine, as_of, chosen)


def _rescore_elsewhere(
    session: Session,
    store: Store,
    engine_name: str,
    as_of: datetime | None,
    settings: ScoringSettings,
) -> RescoreSummary:
    """Run the definitions on DuckDB or Spark over an export of the store; write back the rows."""
    started = time.perf_counter()
    computed_at = utcnow()
    moment = as_of or computed_at
    offsets, default = store_zone_offsets(session, store, moment)
    with open_engine(session, store.id, engine_name) as engine:
        sources = engine.sources()
        expressions = {
            "aggregates": aggregate_rows(sources, store.id, offsets, default),
            "categories": category_rows(sources, store.id),
            "scores": full_score_rows(
                sources,
                store.id,
                as_of=moment,
                settings=settings,
                zone_offsets=offsets,
                default_offset=default,
                ranking=engine.ranking,
            ),
        }
        if isinstance(engine, DuckDBEngine):  # Arrow all the way into the database
            arrow = {key: engine.to_arrow(expression) for key, expression in expressions.items()}
            rows = {}
        else:
            arrow = {}
            rows = {key: engine.fetch(expression) for key, expression in expressions.items()}
    for table in (
        repository.aggregates_table,
        repository.categories_table,
        repository.scores_table,
    ):
        repository.delete_store_rows(session, table, store.id)
    stamps = {"computed_at": computed_at, "as_of": moment}
    if arrow:
        repository.insert_arrow(
            session, repository.aggregates_table, arrow["aggregates"], {"refreshed_at": computed_at}
        )
        repository.insert_arrow(session, repository.categories_table, arrow["categories"], {})
        repository.insert_arrow(session, repository.scores_table, arrow["scores"], stamps)
    else:
        repository.insert_rows(
            session,
            repository.aggregates_table,
            [{**row, "refreshed_at": computed_at} for row in rows["aggregates"]],
        )
        repository.insert_rows(session, repository.categories_table, rows["categories"])
        repository.insert_rows(
            session, repository.scores_table, [{**row, **stamps} for row in rows["scores"]]
        )
    return _summary(session, store.id, engine_name, moment, computed_at, started)


def _summary(
    session: Session,
    store_id: int,
    engine: str,
    as_of: datetime,
    computed_at: datetime,
    started: float,
) -> RescoreSummary:
    counts = repository.stage_counts(session, store_id)
    return RescoreSummary(
        store_id=store_id,
        engine=engine,
        as_of=as_of.astimezone(UTC),
        computed_at=computed_at,
        customers=sum(counts["lifecycle_stage"].values()),
        seconds=time.perf_counter() - started,
        counts=counts,
    )
