"""Per-customer scores against values computed by hand for the fixture store (analytics_fixture).

Hand computation, as of 2026-07-01 12:00 UTC, six buyers (N = 6), score = 1 + ⌊5 · worse / 6⌋:
- recency days: Chad 426, Dora 212, Rita 121, Ava 60, Vera 30, Ned 10 → worse 0..5 → R 1 1 2 3 4 5;
- purchases: Ned, Ava, Dora 1 (worse 0 → F 1); Rita, Chad 2 (worse 3 → F 3); Vera 6 (worse 5 → 5);
- net: Ned 30, Ava 50, Rita 100, Chad 130 (80 + 80 - 30; the wholly refunded order is no purchase),
  Dora 200 (the cancelled order does not count), Vera 6,600 → M 1 1 2 3 4 5;
- F + M: Vera 10, Ned 2, Ava 2, Rita 5, Dora 5, Chad 6 → segments from the grid: Vera R4/10
  Champions, Ned R5/2 New, Ava R3/2 About to Sleep, Rita R2/5 About to Sleep, Dora R1/5
  Hibernating, Chad R1/6 At Risk;
- lifecycle: Vera repeat, Ned new (one purchase 10 days ago), Ava active, Rita at risk (121 > 90),
  Dora dormant (212 > 180), Chad churned (426 > 365), Pia prospect;
- intervals: Vera 50 days / 5 = 10 → next 2026-06-11; Rita 120 days → 2026-06-30; Chad 61 days
  (Mar 1 - May 1 2025) → 2025-07-01;
- purchases a year = purchases · 365 / max(365, days since the first): Chad 2 · 365 / 487;
- Tea's average order value: 13 purchases, $7,110 → $546.92; Vera's $1,100 > 2 x that, she buys
  every 10 days and 6 a year > 5: VIP;
- best hour (most events, in the customer's zone, ties to the earlier hour): Vera 14:00 UTC x4 in
  New York (-4) → 10; Ned 01:00 x2 and 03:00 x2 UTC in the store's Shanghai (+8) → 9; Ava one
  08:00 UTC event → 16; Pia 18:30 UTC in Berlin (+2) → 20.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from patronage.analytics import repository
from patronage.analytics.engines import DatabaseEngine
from patronage.analytics.scoring import ScoringSettings, full_score_rows
from patronage.analytics.service import rescore_store, settings_for, store_zone_offsets
from patronage.customers.models import Customer
from patronage.customers.profile import customer_360
from patronage.kit.clock import Clock, FrozenClock, get_clock, set_clock
from patronage.stores.models import Store
from tests.analytics.analytics_fixture import AS_OF, FixtureStore, build_fixture_store

M = 10_000  # Money units per currency unit


def _at(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, 12, tzinfo=UTC)


EXPECTED: dict[str, dict[str, Any]] = {
    "Vera": dict(order_count=6, first_order_at=_at(2026, 4, 12), last_order_at=_at(2026, 6, 1),
                 recency_days=30, gross_revenue=6600 * M, net_revenue=6600 * M,
                 average_order_value=1100 * M, recency_score=4, frequency_score=5,
                 monetary_score=5, rfm_segment="Champions", lifecycle_stage="repeat",
                 average_repurchase_interval_days=10.0, expected_next_order_date=date(2026, 6, 11),
                 orders_per_year=6.0, is_vip=True, preferred_category_1="Tea",
                 preferred_category_2=None, preferred_category_3=None, best_contact_hour=10),
    "Ned": dict(order_count=1, first_order_at=_at(2026, 6, 21), last_order_at=_at(2026, 6, 21),
                recency_days=10, gross_revenue=30 * M, net_revenue=30 * M,
                average_order_value=30 * M, recency_score=5, frequency_score=1, monetary_score=1,
                rfm_segment="New", lifecycle_stage="new", average_repurchase_interval_days=None,
                expected_next_order_date=None, orders_per_year=1.0, is_vip=False,
                preferred_category_1="Cups", preferred_category_2="Tea",
                preferred_category_3=None, best_contact_hour=9),
    "Ava": dict(order_count=1, first_order_at=_at(2026, 5, 2), last_order_at=_at(2026, 5, 2),
                recency_days=60, gross_revenue=50 * M, net_revenue=50 * M,
                average_order_value=50 * M, recency_score=3, frequency_score=1, monetary_score=1,
                rfm_segment="About to Sleep", lifecycle_stage="active",
                average_repurchase_interval_days=None, expected_next_order_date=None,
                orders_per_year=1.0, is_vip=False, preferred_category_1="Tea",
                preferred_category_2=None, preferred_category_3=None, best_contact_hour=16),
    "Rita": dict(order_count=2, first_order_at=_at(2025, 11, 2), last_order_at=_at(2026, 3, 2),
                 recency_days=121, gross_revenue=100 * M, net_revenue=100 * M,
                 average_order_value=50 * M, recency_score=2, frequency_score=3,
                 monetary_score=2, rfm_segment="About to Sleep", lifecycle_stage="at_risk",
                 average_repurchase_interval_days=120.0, expected_next_order_date=date(2026, 6, 30),
                 orders_per_year=2.0, is_vip=False, preferred_category_1="Tea",
                 preferred_category_2="Cups", preferred_category_3=None, best_contact_hour=None),
    "Dora": dict(order_count=1, first_order_at=_at(2025, 12, 1), last_order_at=_at(2025, 12, 1),
                 recency_days=212, gross_revenue=200 * M, net_revenue=200 * M,
                 average_order_value=200 * M, recency_score=1, frequency_score=1,
                 monetary_score=4, rfm_segment="Hibernating", lifecycle_stage="dormant",
                 average_repurchase_interval_days=None, expected_next_order_date=None,
                 orders_per_year=1.0, is_vip=False, preferred_category_1="Tea",
                 preferred_category_2=None, preferred_category_3=None, best_contact_hour=None),
    "Chad": dict(order_count=2, first_order_at=_at(2025, 3, 1), last_order_at=_at(2025, 5, 1),
                 recency_days=426, gross_revenue=240 * M, net_revenue=130 * M,
                 average_order_value=65 * M, recency_score=1, frequency_score=3,
                 monetary_score=3, rfm_segment="At Risk", lifecycle_stage="churned",
                 average_repurchase_interval_days=61.0, expected_next_order_date=date(2025, 7, 1),
                 orders_per_year=2 * 365 / 487, is_vip=False, preferred_category_1="Tea",
                 preferred_category_2=None, preferred_category_3=None, best_contact_hour=None),
    "Pia": dict(order_count=0, first_order_at=None, last_order_at=None, recency_days=None,
                gross_revenue=0, net_revenue=0, average_order_value=None, recency_score=None,
                frequency_score=None, monetary_score=None, rfm_segment=None,
                lifecycle_stage="prospect", average_repurchase_interval_days=None,
                expected_next_order_date=None, orders_per_year=None, is_vip=False,
                preferred_category_1=None, preferred_category_2=None, preferred_category_3=None,
                best_contact_hour=20),
}  # fmt: skip


@pytest.fixture
def frozen_clock() -> Iterator[FrozenClock]:
    """The process clock stopped at AS_OF."""
    previous: Clock = get_clock()
    clock = FrozenClock(AS_OF)
    set_clock(clock)
    try:
        yield clock
    finally:
        set_clock(previous)


@pytest.fixture
def fixture_store(session: Session, store: Store, frozen_clock: FrozenClock) -> FixtureStore:
    """The hand-computed store of analytics_fixture."""
    return build_fixture_store(session, store)


def computed_scores(session: Session, fixture: FixtureStore) -> dict[str, dict[str, Any]]:
    """Run the full scoring expression in the test database; rows by customer name."""
    engine = DatabaseEngine(session)
    offsets, default = store_zone_offsets(session, fixture.store, AS_OF)
    rows = engine.fetch(
        full_score_rows(
            engine.sources(),
            fixture.store.id,
            as_of=AS_OF,
            settings=ScoringSettings(),
            zone_offsets=offsets,
            default_offset=default,
            ranking=engine.ranking,
        )
    )
    names = {customer_id: name for name, customer_id in fixture.ids.items()}
    return {names[row.pop("customer_id")]: row for row in rows}


def test_scores_match_the_hand_computation(session: Session, fixture_store: FixtureStore) -> None:
    assert computed_scores(session, fixture_store) == EXPECTED


def test_rescore_stores_one_row_per_customer_with_its_time(
    session: Session, fixture_store: FixtureStore
) -> None:
    summary = rescore_store(session, fixture_store.store.id, as_of=AS_OF)
    assert summary.customers == 7
    assert summary.counts["lifecycle_stage"] == {
        "repeat": 1, "new": 1, "active": 1, "at_risk": 1, "dormant": 1, "churned": 1,
        "prospect": 1,
    }  # fmt: skip
    stored = repository.store_scores(session, fixture_store.store.id)
    names = {customer_id: name for name, customer_id in fixture_store.ids.items()}
    assert {names[row["customer_id"]] for row in stored} == set(EXPECTED)
    vera = next(row for row in stored if row["customer_id"] == fixture_store.ids["Vera"])
    assert vera["computed_at"] == AS_OF and vera["as_of"] == AS_OF
    assert vera["net_revenue"] == 6600 and vera["rfm_segment"] == "Champions"
    assert vera["expected_next_order_date"] == date(2026, 6, 11) and vera["is_vip"] is True
    # Rescoring replaces the rows rather than adding to them.
    rescore_store(session, fixture_store.store.id, as_of=AS_OF)
    assert len(repository.store_scores(session, fixture_store.store.id)) == 7


def test_customer_view_carries_the_scores(session: Session, fixture_store: FixtureStore) -> None:
    ned = fixture_store.ids["Ned"]
    assert customer_360(session, fixture_store.store.id, ned).scores is None
    rescore_store(session, fixture_store.store.id, as_of=AS_OF)
    scores = customer_360(session, fixture_store.store.id, ned).scores
    assert scores is not None
    assert scores["rfm_segment"] == "New" and scores["lifecycle_stage"] == "new"
    assert scores["preferred_categories"] == ["Cups", "Tea"]
    assert scores["net_revenue"] == "30.0000" and scores["best_contact_hour"] == 9


def test_thresholds_come_from_the_store_settings(
    session: Session, fixture_store: FixtureStore
) -> None:
    store = fixture_store.store
    thresholds = {"at_risk_days": 150, "vip_category_multiple": 3}
    store.settings = {**(store.settings or {}), "analytics": thresholds}
    session.flush()
    settings = settings_for(store)
    assert settings.at_risk_days == 150 and settings.vip_category_multiple == 3.0
    rescore_store(session, store.id, as_of=AS_OF)
    stored = {row["customer_id"]: row for row in repository.store_scores(session, store.id)}
    assert stored[fixture_store.ids["Rita"]]["lifecycle_stage"] == "repeat"  # 121 ≤ 150 days
    assert stored[fixture_store.ids["Vera"]]["is_vip"] is False  # 1,100 < 3 x 546.92


def test_bad_thresholds_are_refused() -> None:
    with pytest.raises(ValueError, match="thresholds"):
        ScoringSettings.from_mapping({"dormant_days": 50})


def test_merged_customers_are_not_scored(session: Session, fixture_store: FixtureStore) -> None:
    session.execute(
        update(Customer)
        .where(Customer.id == fixture_store.ids["Pia"])
        .values(merged_into_id=fixture_store.ids["Ned"])
    )
    assert "Pia" not in computed_scores(session, fixture_store)
