"""The demo store is deterministic, realistic and consistent on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import phonenumbers
import pytest
from sqlalchemy import Engine, func, select

from patronage.customers.models import Consent, Customer, CustomerIdentity
from patronage.db.session import session_scope
from patronage.demo.catalog import PRODUCTS
from patronage.demo.generator import (
    DemoSimulation,
    DemoSummary,
    build_demo_store,
    simulate,
    tracking_number,
)
from patronage.demo.markets import MARKETS, MARKETS_BY_CODE, daily_demand, easter_sunday
from patronage.kit.clock import FrozenClock, get_clock, set_clock
from patronage.kit.money import quantize
from patronage.kit.phones import to_e164
from patronage.orders.fx import load_rate_book
from patronage.orders.models import Order, OrderLine, Refund
from patronage.stores.models import Store
from patronage.tracking.models import Event

AS_OF = date(2026, 11, 1)
AS_OF_MOMENT = datetime(2026, 11, 1, tzinfo=UTC)
SIZE = 300


@pytest.fixture(scope="module")
def first(engine: Engine) -> DemoSummary:
    """A demo store of 300 customers, seed 7."""
    return build_demo_store(engine, customers=SIZE, seed=7, as_of=AS_OF)


@pytest.fixture(scope="module")
def second(engine: Engine) -> DemoSummary:
    """The same demo store built again."""
    return build_demo_store(engine, customers=SIZE, seed=7, as_of=AS_OF)


@pytest.fixture(scope="module")
def other(engine: Engine) -> DemoSummary:
    """A demo store of the same size from another seed."""
    return build_demo_store(engine, customers=SIZE, seed=8, as_of=AS_OF)


def _orders(engine: Engine, store_id: int) -> list[Order]:
    with session_scope(engine) as session:
        return list(session.scalars(select(Order).where(Order.store_id == store_id)
                                    .order_by(Order.placed_at, Order.id)))  # fmt: skip


def _customers(engine: Engine, store_id: int) -> list[Customer]:
    with session_scope(engine) as session:
        return list(
            session.scalars(select(Customer).where(Customer.store_id == store_id)
                            .order_by(Customer.id))
        )  # fmt: skip


def _fingerprint(engine: Engine, store_id: int) -> tuple[list[Any], list[Any]]:
    """What must not differ between two builds: customers with their orders, in order."""
    customers = _customers(engine, store_id)
    position = {customer.id: index for index, customer in enumerate(customers)}
    orders = [
        (position.get(order.customer_id or 0), order.external_id, order.name, order.currency,
         order.total, order.total_base, order.refunded, order.status, order.placed_at,
         order.delivered_at, order.tracking_number)
        for order in _orders(engine, store_id)
    ]  # fmt: skip
    people = [
        (customer.email, customer.phone, customer.first_name, customer.last_name,
         customer.country, customer.birthday, customer.first_seen_at, customer.created_at)
        for customer in customers
    ]  # fmt: skip
    return people, orders


def test_the_same_seed_builds_the_same_store(
    engine: Engine, first: DemoSummary, second: DemoSummary
) -> None:
    assert first.store_id != second.store_id
    assert first.counts == second.counts
    assert first.revenue_base == second.revenue_base > 0
    assert first.refunded_base == second.refunded_base
    assert [vars(market) for market in first.markets] == [vars(market) for market in second.markets]
    assert _fingerprint(engine, first.store_id) == _fingerprint(engine, second.store_id)
    emails = [customer.email for customer in _customers(engine, first.store_id)[:10]]
    assert emails == [customer.email for customer in _customers(engine, second.store_id)[:10]]


def _ledger_fingerprint(engine: Engine, store_id: int) -> list[Any]:
    """The membership ledger by customer position: entries, coupons and referral codes.

    Two stores in one database differ in their row ids: entries' reasons name them, and the jobs
    take the members of one step in id-dependent order, so entries are compared as a sorted list.
    """
    from patronage.loyalty.models import Coupon, LedgerEntry, LoyaltyMember

    position = {customer.id: index for index, customer in enumerate(_customers(engine, store_id))}
    with session_scope(engine) as session:
        members = {
            member.id: (position[member.customer_id], member.referral_code, member.tier)
            for member in session.scalars(
                select(LoyaltyMember).where(LoyaltyMember.store_id == store_id)
            )
        }
        entries = [
            (members[entry.member_id], entry.kind, entry.available_delta, entry.pending_delta,
             entry.occurred_at)
            for entry in session.scalars(select(LedgerEntry).where(LedgerEntry.store_id == store_id)
                                         .order_by(LedgerEntry.id))
        ]  # fmt: skip
        coupons = [
            (members[coupon.member_id], coupon.code, coupon.value, coupon.used_at)
            for coupon in session.scalars(
                select(Coupon).where(Coupon.store_id == store_id).order_by(Coupon.id)
            )
        ]
    return [sorted(members.values()), sorted(entries, key=repr), coupons]


def test_the_same_seed_builds_the_same_ledger(
    engine: Engine, first: DemoSummary, second: DemoSummary
) -> None:
    assert first.membership == second.membership and first.membership["members"] > 0
    fingerprint = _ledger_fingerprint(engine, first.store_id)
    assert fingerprint[1] and fingerprint[2]
    assert fingerprint == _ledger_fingerprint(engine, second.store_id)


def test_another_seed_builds_another_store(
    engine: Engine, first: DemoSummary, other: DemoSummary
) -> None:
    assert other.counts["customers"] == first.counts["customers"] == SIZE
    assert other.revenue_base != first.revenue_base
    first_emails = [customer.email for customer in _customers(engine, first.store_id)[:10]]
    assert first_emails != [customer.email for customer in _customers(engine, other.store_id)[:10]]


def test_the_simulation_ignores_the_wall_clock() -> None:
    def snapshot() -> str:
        return repr(list(simulate(seed=3, customers=40, as_of=AS_OF, batch_size=15)))

    previous = get_clock()
    try:
        set_clock(FrozenClock(datetime(2031, 5, 5, tzinfo=UTC)))
        later = snapshot()
        set_clock(FrozenClock(datetime(2020, 1, 1, tzinfo=UTC)))
        earlier = snapshot()
    finally:
        set_clock(previous)
    assert later == earlier == snapshot()


def test_a_larger_store_starts_with_the_same_people() -> None:
    small = next(simulate(seed=7, customers=30, as_of=AS_OF)).customers
    large = next(simulate(seed=7, customers=90, as_of=AS_OF)).customers[:30]
    assert [customer.email for customer in small] == [customer.email for customer in large]


def test_every_market_has_customers_and_orders_in_its_currency(
    engine: Engine, first: DemoSummary
) -> None:
    assert [market.code for market in first.markets] == [market.code for market in MARKETS]
    assert all(market.customers > 0 and market.orders > 0 for market in first.markets)
    assert len(MARKETS) == 12
    orders = _orders(engine, first.store_id)
    for order in orders:
        assert order.market is not None
        assert order.currency == MARKETS_BY_CODE[order.market].currency
    for customer in _customers(engine, first.store_id):
        assert customer.country is not None
        market = MARKETS_BY_CODE[customer.country]
        assert customer.currency == market.currency
        assert customer.timezone in {zone for zone, _ in market.timezones}
    with session_scope(engine) as session:
        store = session.get(Store, first.store_id)
        assert store is not None
        assert (store.base_currency, store.timezone) == ("USD", "Asia/Shanghai")
        assert store.markets == [market.code for market in MARKETS]
        assert store.settings["demo"] == {"seed": 7, "customers": SIZE, "as_of": "2026-11-01"}


def test_amounts_convert_with_the_dated_exchange_rates(engine: Engine, first: DemoSummary) -> None:
    with session_scope(engine) as session:
        book = load_rate_book(session, first.store_id, "USD")
    assert set(book.dates) == {market.currency for market in MARKETS} - {"USD"}
    orders = _orders(engine, first.store_id)
    rates_seen: dict[str, set[Decimal]] = {}
    for order in orders:
        rate = book.rate(order.currency, order.placed_at.date())
        assert order.fx_rate == rate
        assert order.total_base == quantize(order.total * rate, "USD")
        assert order.refunded_base == quantize(order.refunded * rate, "USD")
        rates_seen.setdefault(order.currency, set()).add(rate)
        if order.currency in ("JPY", "KRW"):
            assert order.total == order.total.to_integral_value()
    assert rates_seen["USD"] == {Decimal(1)}
    assert len(rates_seen["EUR"]) > 5  # the rate moves from day to day
    assert len(rates_seen.get("AED", {Decimal(1)})) == 1  # pegged to the dollar
    for order in orders:
        assert order.total == order.subtotal - order.discount + order.shipping + (
            0 if MARKETS_BY_CODE[order.market or "US"].tax_included else order.tax
        )


def test_delivery_takes_3_to_28_days_by_route(engine: Engine, first: DemoSummary) -> None:
    days_by_market: dict[str, list[float]] = {}
    late = delivered = 0
    for order in _orders(engine, first.store_id):
        if order.delivered_at is None:
            continue
        delivered += 1
        days = (order.delivered_at - order.placed_at).total_seconds() / 86_400
        assert 3 <= days <= 28, (order.external_id, days)
        days_by_market.setdefault(order.market or "", []).append(days)
        assert order.promised_delivery_date is not None
        late += order.delivered_at.date() > order.promised_delivery_date
    assert 0.02 < late / delivered < 0.25

    def average(code: str) -> float:
        return sum(days_by_market[code]) / len(days_by_market[code])

    assert average("BR") > average("US") + 5  # far and cross-border against a local warehouse
    assert average("KR") < average("IN")


def test_the_timeline_only_moves_forward(engine: Engine, first: DemoSummary) -> None:
    statuses: Counter[str] = Counter()
    for order in _orders(engine, first.store_id):
        statuses[order.status] += 1
        steps = [order.placed_at, order.paid_at, order.shipped_at, order.delivered_at]
        if order.attributes.get("payment_method") == "cash_on_delivery":
            # Cash on delivery is paid when the parcel arrives.
            assert order.paid_at is None or order.paid_at == order.delivered_at
            steps = [order.placed_at, order.shipped_at, order.delivered_at]
        known = [moment for moment in steps if moment is not None]
        assert known == sorted(known), order.external_id
        for moment in (*known, order.cancelled_at, order.returned_at):
            assert moment is None or moment < AS_OF_MOMENT
        if order.shipped_at is not None:
            assert order.carrier and order.tracking_number
        if order.cancelled_at is not None:
            assert order.status == "cancelled" and order.delivered_at is None
    total = sum(statuses.values())
    assert statuses["delivered"] > total / 2
    assert 0 < statuses["cancelled"] / total < 0.06
    assert statuses["shipped"] + statuses["paid"] + statuses["placed"] > 0  # still on their way


def test_customers_buy_unevenly(engine: Engine, first: DemoSummary) -> None:
    per_customer = Counter(order.customer_id for order in _orders(engine, first.store_id))
    assert None not in per_customer
    counts = sorted(per_customer.values())
    buyers = len(counts)
    assert SIZE * 0.75 < buyers < SIZE  # some signed up and never ordered
    assert counts.count(1) > buyers * 0.4  # most buy once
    assert counts[-1] >= 6  # and a few buy often
    assert sum(1 for count in counts if count >= 4) >= 5


def test_refunds_exist_and_never_exceed_the_order(engine: Engine, first: DemoSummary) -> None:
    with session_scope(engine) as session:
        refunds = list(session.scalars(select(Refund).where(Refund.store_id == first.store_id)))
        line_refunds = session.scalar(
            select(func.count()).where(OrderLine.store_id == first.store_id,
                                       OrderLine.refunded_quantity > 0)
        )  # fmt: skip
    orders = {order.id: order for order in _orders(engine, first.store_id)}
    assert refunds and line_refunds
    by_order: dict[int, Decimal] = {}
    for refund in refunds:
        by_order[refund.order_id] = by_order.get(refund.order_id, Decimal(0)) + refund.amount
        order = orders[refund.order_id]
        assert refund.currency == order.currency
        assert order.placed_at < refund.refunded_at < AS_OF_MOMENT
    partial = 0
    for order_id, amount in by_order.items():
        order = orders[order_id]
        assert 0 < amount <= order.total
        assert order.refunded == amount
        partial += amount < order.total
    assert partial > 0
    assert 0.02 < len(by_order) / len(orders) < 0.15


def test_customers_look_real(engine: Engine, first: DemoSummary) -> None:
    customers = _customers(engine, first.store_id)
    emails = [customer.email for customer in customers]
    assert len(set(emails)) == len(emails) and all(email and "@" in email for email in emails)
    phones = [customer.phone for customer in customers if customer.phone]
    assert len(set(phones)) == len(phones) > SIZE / 3
    for customer in customers:
        if customer.phone:
            assert to_e164(customer.phone) == customer.phone
            number = phonenumbers.parse(customer.phone)
            assert phonenumbers.is_valid_number(number)
            assert phonenumbers.region_code_for_number(number) == customer.country
        assert customer.first_name and customer.last_name and customer.language
        assert customer.first_seen_at is not None and customer.created_at == customer.first_seen_at
    assert any(customer.birthday for customer in customers)
    assert any(not (customer.first_name or "").isascii() for customer in customers)
    with session_scope(engine) as session:
        kinds = Counter(
            session.scalars(
                select(CustomerIdentity.kind).where(CustomerIdentity.store_id == first.store_id)
            )
        )
        consents: Counter[tuple[str, str]] = Counter(
            (channel, status)
            for channel, status in session.execute(
                select(Consent.channel, Consent.status).where(Consent.store_id == first.store_id)
            )
        )
    assert kinds["shopify"] > SIZE * 0.8 and kinds["anonymous_id"] > 0 and kinds["user_id"] > 0
    assert kinds["email"] == SIZE
    assert consents[("email", "subscribed")] > 0 and consents[("email", "unsubscribed")] > 0
    assert consents[("whatsapp", "subscribed")] > 0 and consents[("sms", "subscribed")] > 0


def test_events_belong_to_customers_and_tell_the_funnel(engine: Engine, first: DemoSummary) -> None:
    customer_ids = {customer.id for customer in _customers(engine, first.store_id)}
    with session_scope(engine) as session:
        events = list(session.scalars(select(Event).where(Event.store_id == first.store_id)))
    assert len(events) == first.counts["events"] > SIZE
    assert len({event.message_id for event in events}) == len(events)
    names = Counter(event.name for event in events)
    assert set(names) == {"Product Viewed", "Product Added", "Checkout Started",
                          "Order Completed", "Email Opened", "Email Link Clicked"}  # fmt: skip
    assert names["Product Viewed"] > names["Product Added"] > names["Checkout Started"]
    assert names["Checkout Started"] > names["Order Completed"]  # some carts are abandoned
    for event in events:
        assert event.customer_id in customer_ids
        assert event.occurred_at < AS_OF_MOMENT and event.received_at >= event.occurred_at
        assert isinstance(event.properties, dict) and event.context["timezone"]
        if event.source == "tracking":
            assert event.anonymous_id is not None
    completed = [event for event in events if event.name == "Order Completed"]
    orders = {order.external_id: order for order in _orders(engine, first.store_id)}
    for event in completed:
        order = orders[event.properties["order_id"]]
        assert order.customer_id == event.customer_id and order.placed_at == event.occurred_at


def test_orders_happen_at_local_shopping_hours(engine: Engine, first: DemoSummary) -> None:
    from zoneinfo import ZoneInfo

    zones = {customer.id: customer.timezone for customer in _customers(engine, first.store_id)}
    hours = Counter(
        order.placed_at.astimezone(ZoneInfo(zones[order.customer_id or 0] or "UTC")).hour
        for order in _orders(engine, first.store_id)
    )
    evening = sum(hours[hour] for hour in range(18, 23))
    night = sum(hours[hour] for hour in range(1, 6))
    assert evening > 3 * night


def test_holidays_raise_demand() -> None:
    united_states = MARKETS_BY_CODE["US"]
    demand = daily_demand(united_states, date(2025, 1, 1), 365)
    black_friday = date(2025, 11, 28) - date(2025, 1, 1)
    assert demand[black_friday.days] > 2.5 * demand[100]
    india = daily_demand(MARKETS_BY_CODE["IN"], date(2025, 1, 1), 365)
    assert india[(date(2025, 10, 15) - date(2025, 1, 1)).days] > 1.5 * india[100]  # Diwali
    assert easter_sunday(2026) == date(2026, 4, 5)


def test_prices_follow_local_price_points() -> None:
    simulation = DemoSimulation(seed=7, customers=1, as_of=AS_OF)
    tea = PRODUCTS[0]
    day = AS_OF - timedelta(days=10)
    assert simulation.local_price(tea, MARKETS_BY_CODE["US"], day) == tea.price
    assert str(simulation.local_price(tea, MARKETS_BY_CODE["DE"], day)).endswith(".99")
    assert simulation.local_price(tea, MARKETS_BY_CODE["JP"], day) % 100 == 80
    assert simulation.local_price(tea, MARKETS_BY_CODE["KR"], day) % 1000 == 900


def test_postal_tracking_numbers_carry_their_check_digit() -> None:
    import random

    number = tracking_number(random.Random(1), "China Post")
    assert len(number) == 13 and number.endswith("CN")
    digits = [int(char) for char in number[2:10]]
    check = 11 - sum(d * w for d, w in zip(digits, (8, 6, 4, 2, 3, 5, 9, 7), strict=True)) % 11
    assert int(number[10]) == {10: 0, 11: 5}.get(check, check)
