"""A tiny store whose KPIs and scores are computed by hand in the tests (see each test module).

As of 2026-07-01 12:00 UTC, in USD (base), store time zone Asia/Shanghai:

| customer | purchases (net)                              | notes |
|----------|----------------------------------------------|-----------------------------------------|
| Vera     | 6 x $1,100 Tea, every 10 days Apr 12 - Jun 1 | New York time; US; the VIP |
| Ned      | 1 x $30 Jun 21, Tea + Cups                   | no time zone (store's); DE |
| Ava      | 1 x $50 May 2, Tea; an unpaid $70 Jun 5     | DE                                      |
| Rita     | $40 2025-11-02 (Tea + Cups), $60 Mar 2 (Tea) | US |
| Dora     | $200 2025-12-01 (Tea); a cancelled $500      | DE |
| Chad     | $80 2025-03-01, $80 refunded 2025-04-01,     | US |
|          | $80 - $30 refund 2025-05-01 (all Tea)        | |
| Pia      | no orders, one event                         | Berlin time |
| (guest)  | $25 Feb 10, no customer                      | US |
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from patronage.customers.models import Customer
from patronage.customers.schemas import CustomerIn
from patronage.customers.service import resolve_customers
from patronage.db.base import table_of
from patronage.orders.schemas import LineIn, OrderIn, RefundIn
from patronage.orders.service import upsert_orders
from patronage.stores.models import Store
from patronage.tracking.models import Event

AS_OF = datetime(2026, 7, 1, 12, tzinfo=UTC)


def at(year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    """A UTC moment."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@dataclass(frozen=True)
class FixtureStore:
    """The customer ids of the fixture store, by first name."""

    store: Store
    ids: dict[str, int]


def _line(category: str, price: str, title: str = "Item") -> LineIn:
    return LineIn(title=title, quantity=1, unit_price=Decimal(price), category=category)


def _order(
    number: str,
    email: str | None,
    placed: datetime,
    total: str,
    market: str,
    categories: tuple[str, ...] = ("Tea",),
    *,
    paid: bool = True,
    cancelled: bool = False,
    refunds: list[RefundIn] | None = None,
    timezone: str | None = None,
) -> OrderIn:
    share = Decimal(total) / len(categories)
    customer = (
        CustomerIn(source="csv", email=email, timezone=timezone, first_name=email.split("@")[0])
        if email
        else None
    )
    return OrderIn(
        source="csv",
        external_id=number,
        currency="USD",
        placed_at=placed,
        total=Decimal(total),
        customer=customer,
        market=market,
        paid_at=placed if paid else None,
        cancelled_at=placed + timedelta(hours=1) if cancelled else None,
        lines=[_line(category, str(share)) for category in categories],
        refunds=refunds or [],
    )


def fixture_orders() -> list[OrderIn]:
    """Every order of the fixture store."""
    vera = "vera@example.com"
    orders = [
        _order(f"V{index}", vera, at(2026, 4, 12) + timedelta(days=10 * index), "1100", "US",
               timezone="America/New_York")
        for index in range(6)
    ]  # fmt: skip
    orders += [
        _order("N1", "ned@example.com", at(2026, 6, 21), "30", "DE", ("Tea", "Cups")),
        _order("A1", "ava@example.com", at(2026, 5, 2), "50", "DE"),
        _order("A2", "ava@example.com", at(2026, 6, 5), "70", "DE", paid=False),
        _order("R1", "rita@example.com", at(2025, 11, 2), "40", "US", ("Tea", "Cups")),
        _order("R2", "rita@example.com", at(2026, 3, 2), "60", "US"),
        _order("D1", "dora@example.com", at(2025, 12, 1), "200", "DE"),
        _order("D2", "dora@example.com", at(2026, 2, 3), "500", "DE", cancelled=True),
        _order("C1", "chad@example.com", at(2025, 3, 1), "80", "US"),
        _order(
            "C2", "chad@example.com", at(2025, 4, 1), "80", "US",
            refunds=[RefundIn("C2-R", Decimal("80"), at(2025, 4, 5))],
        ),
        _order(
            "C3", "chad@example.com", at(2025, 5, 1), "80", "US",
            refunds=[RefundIn("C3-R", Decimal("30"), at(2025, 5, 6))],
        ),
        _order("G1", None, at(2026, 2, 10), "25", "US"),
    ]  # fmt: skip
    return orders


def build_fixture_store(session: Session, store: Store) -> FixtureStore:
    """Record the fixture's customers, orders and events in `store`; return the ids."""
    resolve_customers(
        session,
        store.id,
        [CustomerIn(source="csv", email="pia@example.com", timezone="Europe/Berlin")],
    )
    upsert_orders(session, store, fixture_orders())
    rows = session.execute(
        select(Customer.email, Customer.id).where(Customer.store_id == store.id)
    ).all()
    ids = {str(email).split("@")[0].capitalize(): customer_id for email, customer_id in rows}
    add_fixture_events(session, store, ids)
    session.flush()
    return FixtureStore(store=store, ids=ids)


def add_fixture_events(session: Session, store: Store, ids: dict[str, int]) -> None:
    """Funnel and contact-hour events (see test_kpis and test_scoring for the hand counts)."""
    events: list[tuple[str, int | None, str | None, datetime]] = [
        ("Product Viewed", ids["Vera"], None, at(2026, 6, 10, 14, 0)),
        ("Product Added", ids["Vera"], None, at(2026, 6, 10, 14, 5)),
        ("Checkout Started", ids["Vera"], None, at(2026, 6, 10, 14, 10)),
        ("Order Completed", ids["Vera"], None, at(2026, 6, 10, 14, 12)),
        ("Page Viewed", ids["Vera"], None, at(2026, 6, 12, 2, 0)),
        ("Page Viewed", ids["Vera"], None, at(2026, 6, 13, 2, 0)),
        ("Product Viewed", None, "anon-1", at(2026, 6, 11, 9, 0)),
        ("Product Viewed", None, "anon-1", at(2026, 6, 11, 10, 0)),
        ("Product Added", None, "anon-1", at(2026, 6, 11, 10, 1)),
        ("Product Viewed", ids["Ned"], None, at(2026, 6, 20, 1, 0)),
        ("Product Viewed", ids["Ned"], None, at(2026, 6, 20, 1, 10)),
        ("Product Viewed", ids["Ned"], None, at(2026, 6, 20, 3, 0)),
        ("Product Added", ids["Ned"], None, at(2026, 6, 20, 3, 5)),
        ("Page Viewed", ids["Pia"], None, at(2026, 6, 15, 18, 30)),
        ("Product Viewed", ids["Ava"], None, at(2025, 6, 1, 8, 0)),  # before the period
    ]
    session.execute(
        insert(table_of(Event)),
        [
            {
                "store_id": store.id,
                "message_id": f"m{index}",
                "type": "track",
                "name": name,
                "customer_id": customer_id,
                "anonymous_id": anonymous_id,
                "occurred_at": moment,
                "received_at": moment,
                "source": "test",
                "properties": {},
                "context": {},
            }
            for index, (name, customer_id, anonymous_id, moment) in enumerate(events)
        ],
    )
