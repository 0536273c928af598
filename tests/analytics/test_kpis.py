"""Store KPIs against values computed by hand for the fixture store (analytics_fixture).

Period 2026-01-01 - 2026-06-30 (UTC), all markets. Purchases in the period: Vera 6 x $1,100
(Apr 12 - Jun 1), Ned $30 (Jun 21), Ava $50 (May 2), Rita $60 (Mar 2), the guest's $25 (Feb 10);
Ava's unpaid order and Dora's cancelled one do not count → 10 orders, $6,765, AOV $676.50.
Active customers: Vera, Ned, Ava, Rita (4); new: Vera, Ned, Ava (first purchase ever in the
period); returning: Rita (bought in 2025 too). Repurchase rate in the period: only Vera bought
twice → 1/4; over the lifetime up to Jun 30: 6 buyers, 3 with two purchases or more (Vera, Rita,
Chad; Chad's second purchase is May 2025, his April order being wholly refunded) → 1/2.
Members (customers, no membership yet): 7 live customers, 4 active → 4/7; the guest's $25 is the
only revenue without a customer → 6,740/6,765; Rita's $60 is the returning customers' revenue.
"""

from __future__ import annotations

import json
from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from patronage.analytics.engines import DatabaseEngine
from patronage.analytics.kpis import KpiQuery, store_kpis
from patronage.db.session import session_scope
from patronage.kit.clock import FrozenClock
from patronage.stores.models import Store
from patronage.stores.service import NewStore, get_store
from tests.analytics.analytics_fixture import FixtureStore, build_fixture_store
from tests.analytics.test_scoring import fixture_store, frozen_clock  # noqa: F401 - fixtures

HALF_YEAR = {"start": date(2026, 1, 1), "end": date(2026, 6, 30)}


def kpis_of(session: Session, store: Store, market: str | None = None) -> dict[str, object]:
    """The fixture store's KPIs for the first half of 2026."""
    query = KpiQuery.for_dates(store.id, market=market, currency="USD", **HALF_YEAR)
    return store_kpis(DatabaseEngine(session), query)


def test_headline_kpis(session: Session, fixture_store: FixtureStore) -> None:  # noqa: F811
    kpis = kpis_of(session, fixture_store.store)
    assert kpis["period"] == {"from": "2026-01-01", "to": "2026-06-30"}
    assert kpis["orders"] == 10
    assert kpis["revenue"] == {"gross": "6765.00", "refunds": "0.00", "net": "6765.00"}
    assert kpis["average_order_value"] == "676.50"
    assert kpis["customers"] == {"active": 4, "new": 3, "returning": 1}
    assert kpis["repurchase_rate"] == {"period": 0.25, "lifetime": 0.5}
    assert kpis["members"] == {
        "definition": "customers (until a loyalty membership exists)",
        "count": 7,
        "activity_rate": round(4 / 7, 6),
        "revenue_share": round(6740 / 6765, 6),
        "returning_revenue_share": round(60 / 6765, 6),
    }


def test_by_month(session: Session, fixture_store: FixtureStore) -> None:  # noqa: F811
    """Lifetime repurchase rate at each month end: buyers (first purchase) Chad 2025-03, Rita
    2025-11, Dora 2025-12, Vera 2026-04, Ava 2026-05, Ned 2026-06; second purchases Chad 2025-05,
    Rita 2026-03, Vera 2026-04 → Jan, Feb 1/3; Mar 2/3; Apr 3/4; May 3/5; Jun 3/6."""
    months = kpis_of(session, fixture_store.store)["by_month"]
    assert [(m["month"], m["orders"], m["net"], m["active_customers"], m["new_customers"],
             m["repurchase_rate"]) for m in months] == [
        ("2026-01", 0, "0.00", 0, 0, round(1 / 3, 6)),
        ("2026-02", 1, "25.00", 0, 0, round(1 / 3, 6)),
        ("2026-03", 1, "60.00", 1, 0, round(2 / 3, 6)),
        ("2026-04", 2, "2200.00", 1, 1, 0.75),
        ("2026-05", 4, "3350.00", 2, 1, 0.6),
        ("2026-06", 2, "1130.00", 2, 1, 0.5),
    ]  # fmt: skip


def test_by_market(session: Session, fixture_store: FixtureStore) -> None:  # noqa: F811
    """US: Vera 6 x 1,100, Rita 60, the guest 25 → 8 orders, $6,685, 2 customers, Vera twice;
    DE: Ned 30, Ava 50 → 2 orders, 2 customers, nobody twice."""
    markets = kpis_of(session, fixture_store.store)["by_market"]
    rows = [
        (m["market"], m["orders"], m["net"], m["customers"], m["repurchase_rate"]) for m in markets
    ]
    assert rows == [("US", 8, "6685.00", 2, 0.5), ("DE", 2, "80.00", 2, 0.0)]


def test_one_market(session: Session, fixture_store: FixtureStore) -> None:  # noqa: F811
    """In DE: Ned and Ava are new there; DE buyers over the lifetime are Ned, Ava and Dora."""
    kpis = kpis_of(session, fixture_store.store, market="de")
    assert kpis["market"] == "DE" and kpis["orders"] == 2
    assert kpis["revenue"]["net"] == "80.00"
    assert kpis["customers"] == {"active": 2, "new": 2, "returning": 0}
    assert kpis["repurchase_rate"] == {"period": 0.0, "lifetime": 0.0}


def test_cohorts(session: Session, fixture_store: FixtureStore) -> None:  # noqa: F811
    """First purchases in the period: Vera in April (buys again in May and June), Ava in May
    (not again in June), Ned in June."""
    assert kpis_of(session, fixture_store.store)["cohorts"] == [
        {"cohort": "2026-04", "customers": 1, "retention": [1.0, 1.0, 1.0]},
        {"cohort": "2026-05", "customers": 1, "retention": [1.0, 0.0]},
        {"cohort": "2026-06", "customers": 1, "retention": [1.0]},
    ]


def test_funnel(session: Session, fixture_store: FixtureStore) -> None:  # noqa: F811
    """Views: Vera (1 session), anon-1 (09:00 and 10:00: 2 sessions), Ned (01:00/01:10 and 03:00:
    2 sessions) → 3 people, 5 sessions; adds: Vera, anon-1, Ned → 3, 3; checkout and order: Vera.
    Ava's 2025 view is outside the period."""
    funnel = kpis_of(session, fixture_store.store)["funnel"]
    assert [(s["step"], s["people"], s["sessions"], s["conversion_from_previous"])
            for s in funnel] == [
        ("Product Viewed", 3, 5, None),
        ("Product Added", 3, 3, 1.0),
        ("Checkout Started", 1, 1, round(1 / 3, 6)),
        ("Order Completed", 1, 1, 1.0),
    ]  # fmt: skip


def test_a_period_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(ValueError, match="starts after"):
        KpiQuery.for_dates(1, start=date(2026, 2, 1), end=date(2026, 1, 1))


def test_kpis_over_http(
    engine: Engine,
    committed_store: NewStore,
    api_client: TestClient,
    frozen_clock: FrozenClock,  # noqa: F811
) -> None:
    with session_scope(engine) as session:
        build_fixture_store(session, get_store(session, committed_store.store.id))
    headers = {"Authorization": f"Bearer {committed_store.secret_key}"}
    response = api_client.get(
        "/v1/analytics/kpis", params={"from": "2026-01-01", "to": "2026-06-30"}, headers=headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["orders"] == 10 and body["revenue"]["net"] == "6765.00"
    german = api_client.get(
        "/v1/analytics/kpis",
        params={"from": "2026-01-01", "to": "2026-06-30", "market": "DE"},
        headers=headers,
    ).json()
    assert german["orders"] == 2
    assert api_client.get("/v1/analytics/kpis").status_code == 401
    bad = api_client.get(
        "/v1/analytics/kpis", params={"from": "2026-07-01", "to": "2026-06-30"}, headers=headers
    )
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"


def test_analyze_command(cli_database: str, frozen_clock: FrozenClock) -> None:  # noqa: F811
    import typer

    from patronage.cli import analyze as analytics_cli
    from patronage.db.engine import get_engine
    from patronage.db.migrate import upgrade
    from patronage.stores.service import create_store

    app = typer.Typer()
    app.command("analyze")(analytics_cli.analyze)
    app.add_typer(analytics_cli.report_app, name="report")
    upgrade(get_engine())
    with session_scope() as session:
        store = create_store(session, name="CLI", base_currency="USD", timezone="Asia/Shanghai")
        build_fixture_store(session, store.store)
        store_id = str(store.store.id)
    runner = CliRunner()
    shown = runner.invoke(
        app, ["analyze", "--store", store_id, "--from", "2026-01-01", "--to", "2026-06-30",
              "--json"],
    )  # fmt: skip
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["customers"] == {"active": 4, "new": 3, "returning": 1}
    table = runner.invoke(app, ["analyze", "--store", store_id, "--from", "2026-01-01"])
    assert table.exit_code == 0 and "repurchase rate" in table.stdout
    rescored = runner.invoke(
        app, ["analyze", "--store", store_id, "--rescore", "--as-of", "2026-07-01", "--json"]
    )
    assert rescored.exit_code == 0, rescored.output
    assert json.loads(rescored.stdout)["customers"] == 7
    missing = runner.invoke(app, ["analyze", "--store", "999"])
    assert missing.exit_code == 1
