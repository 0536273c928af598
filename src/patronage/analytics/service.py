"""Rescoring a store: rebuild the kept aggregates, then score every customer from them."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.orm import Session

from patronage.analytics import repository
from patronage.analytics.engines import AnalyticsEngine, DatabaseEngine, DuckDBEngine, open_engine
from patronage.analytics.scoring import (
    AGGREGATE_COLUMNS,
    CATEGORY_COLUMNS,
    SCORE_COLUMNS,
    QuintileBounds,
    ScoringSettings,
    aggregate_rows,
    buyer_measures,
    category_rows,
    category_values,
    crossing_buyers,
    full_score_rows,
    moved_bounds,
    score_rows,
)
from patronage.db.types import UTCDateTime
from patronage.errors import ValidationFailedError
from patronage.kit.clock import utcnow
from patronage.stores.models import Store
from patronage.stores.service import get_store

SELECTIVE_CHUNK = 5_000  # customer ids per selective scoring statement


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
    mode: str = "full"  # full | selective (only the customers whose inputs changed)
    reason: str = "a full rescoring was asked for"
    rescored: int | None = None  # customers rescored (None: every customer)

    def as_dict(self) -> dict[str, Any]:
        """Return the summary as JSON-ready values."""
        return {
            "mode": self.mode,
            "reason": self.reason,
            "rescored": self.customers if self.rescored is None else self.rescored,
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
    chosen = settings or settings_for(store)
    bounds, values = scoring_inputs(engine, store.id, moment)
    _record_inputs(session, store.id, computed_at, moment, chosen, bounds, values)
    return _summary(session, store.id, engine.name, moment, computed_at, started)


def scoring_inputs(
    engine: AnalyticsEngine, store_id: int, as_of: datetime
) -> tuple[QuintileBounds, dict[str, list[int]]]:
    """Return what every stored score depends on besides the customer's own aggregates.

    The quintile bounds of all buyers, and each category's purchases and net value (the VIP
    flag compares a customer's order value with their first category's average).
    """
    customers = engine.table("customers")
    bounds = engine.quintile_bounds(
        buyer_measures(customers, store_id, engine.table("customer_aggregates"), as_of)
    )
    rows = engine.fetch(
        category_values(engine.table("customer_category_aggregates"), customers, store_id)
    )
    values = {
        str(row["category"]): [int(row["category_orders"]), int(row["category_net"])]
        for row in rows
    }
    return bounds, values


def _record_inputs(
    session: Session,
    store_id: int,
    computed_at: datetime,
    as_of: datetime,
    settings: ScoringSettings,
    bounds: QuintileBounds,
    values: dict[str, list[int]],
) -> None:
    repository.save_score_run(
        session,
        store_id,
        computed_at=computed_at,
        as_of=as_of,
        settings=asdict(settings),
        bounds=bounds.as_dict(),
        categories=values,
    )


def full_rescore_reason(
    run: Any, as_of: datetime, settings: ScoringSettings, bounds: QuintileBounds
) -> str | None:
    """Why the stored scores of customers without new data may differ now (None: they cannot)."""
    if run is None:
        return "no record of what the stored scores were computed from"
    if run.as_of.astimezone(UTC) != as_of.astimezone(UTC):
        return "the as-of moment changed (recency and lifecycle stages move with it)"
    if run.settings != asdict(settings):
        return "the scoring settings changed"
    previous = QuintileBounds.from_dict(run.bounds)
    if previous != bounds and (previous.buyers == 0 or bounds.buyers == 0):
        return "the store had no buyers, or has none now"
    return None


def rescore_customers(
    session: Session,
    store_id: int,
    customer_ids: Iterable[int | None],
    *,
    as_of: datetime | None = None,
    settings: ScoringSettings | None = None,
) -> RescoreSummary:
    """Refresh the aggregates of `customer_ids` (whose orders changed) and rescore the store.

    When the as-of moment and the settings are those of the stored scores, only the customers
    whose score can have changed are rescored: `customer_ids`; the buyers whose value lies
    between a quintile bound's old and new place (`crossing_buyers`); the repeat buyers whose
    first category's average order value moved (VIP flag); customers added since and merged
    ones. Otherwise, or when that is over a fifth of the buyers, every customer is rescored. The
    summary's `mode` and `reason` say which and why; the result equals a full rescoring.
    """
    from patronage.analytics.aggregates import refresh_customer_aggregates

    started = time.perf_counter()
    store = get_store(session, store_id)
    chosen = settings or settings_for(store)
    computed_at = utcnow()
    moment = as_of or computed_at
    wanted = sorted({customer_id for customer_id in customer_ids if customer_id is not None})
    refresh_customer_aggregates(session, store.id, wanted)
    engine = DatabaseEngine(session)
    bounds, values = scoring_inputs(engine, store.id, moment)
    run = repository.score_run(session, store.id)
    reason = full_rescore_reason(run, moment, chosen, bounds)
    if reason is not None:
        summary = score_from_aggregates(session, store, as_of=moment, settings=chosen)
        summary.reason = reason
        summary.seconds = time.perf_counter() - started
        return summary
    assert run is not None
    changed = [
        category
        for category in set(values) | set(run.categories)
        if values.get(category) != run.categories.get(category)
    ]
    previous = QuintileBounds.from_dict(run.bounds)
    crossing: list[int] = []
    if previous != bounds:  # the buyers between an old and a new bound change score too
        measures = buyer_measures(
            engine.table("customers"), store.id, engine.table("customer_aggregates"), moment
        )
        low, high = moved_bounds(previous, bounds)
        crossing = [
            row["customer_id"] for row in engine.fetch(crossing_buyers(measures, low, high))
        ]
    affected = sorted(
        set(wanted)
        | set(crossing)
        | set(repository.vip_candidates(session, store.id, changed))
        | set(repository.unmatched_scores(session, store.id))
    )
    if len(affected) > max(SELECTIVE_CHUNK, bounds.buyers // 5):
        summary = score_from_aggregates(session, store, as_of=moment, settings=chosen)
        summary.reason = f"{len(affected):,} customers' scores may change: cheaper to rescore all"
        summary.seconds = time.perf_counter() - started
        return summary
    repository.delete_customer_rows(session, repository.scores_table, store.id, affected)
    for chunk in repository.chunks(affected, SELECTIVE_CHUNK):
        engine.insert_select(
            "customer_scores",
            score_rows(
                engine.table("customers"),
                store.id,
                engine.table("customer_aggregates"),
                engine.table("customer_category_aggregates"),
                as_of=moment,
                settings=chosen,
                bounds=bounds,
                customer_ids=list(chunk),
            ),
            columns=SCORE_COLUMNS,
            constants={"computed_at": computed_at, "as_of": moment},
            constant_types={"computed_at": UTCDateTime(), "as_of": UTCDateTime()},
        )
    _record_inputs(session, store.id, computed_at, moment, chosen, bounds, values)
    summary = _summary(session, store.id, engine.name, moment, computed_at, started)
    summary.mode = "selective"
    summary.reason = (
        "same as-of moment and settings; "
        + (f"{len(crossing):,} buyers crossed a moved quintile bound" if crossing else
           "the quintile bounds did not move")
    )  # fmt: skip
    summary.rescored = len(affected)
    return summary


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
    repository.forget_score_run(session, store.id)  # its inputs are not recorded here
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
