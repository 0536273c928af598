"""Store KPIs for a period and market, defined with Ibis and run where the data lives.

Definitions (docs/analytics.md has the long form):
- a *paid order* has status paid, shipped, delivered, partially_refunded, refunded or returned;
  *gross revenue* sums their base-currency totals, *net revenue* subtracts refunds;
- a *purchase* is a paid order that still holds money after refunds (net > 0); order counts,
  average order value and every customer count use purchases;
- the period is [from, to) in UTC; months are UTC calendar months;
- *active* customers made a purchase in the period, *new* ones made their first purchase ever (in
  the market, when one is chosen) in it, *returning* ones are active and had purchased before it;
- *repurchase rate*: of the customers who made at least one purchase, the share who made at least
  two — counted within the period, and over their lifetime up to the end of the period;
- *members*: until a loyalty membership exists, every (not merged) customer is a member.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import ibis
import ibis.expr.types as ir

from patronage.analytics.engines import AnalyticsEngine
from patronage.analytics.scoring import REVENUE_STATUSES, epoch_seconds, live_customers
from patronage.kit.clock import utcnow
from patronage.kit.money import quantize

FUNNEL_STEPS = ("Product Viewed", "Product Added", "Checkout Started", "Order Completed")
SESSION_GAP_SECONDS = 30 * 60
MAX_COHORT_MONTHS = 24
UNKNOWN_MARKET = "unknown"


@dataclass(frozen=True)
class KpiQuery:
    """What to measure: a store, a period [start, end) in UTC and optionally one market."""

    store_id: int
    start: datetime
    end: datetime
    market: str | None = None
    currency: str = "USD"

    @classmethod
    def for_dates(
        cls,
        store_id: int,
        *,
        start: date | None,
        end: date | None,
        market: str | None = None,
        currency: str = "USD",
        today: date | None = None,
    ) -> KpiQuery:
        """Build a query from calendar dates; `end` is inclusive, the default is the last year."""
        last_day = end or today or utcnow().date()
        first_day = start or last_day - timedelta(days=364)
        if first_day > last_day:
            raise ValueError("the period starts after it ends")
        return cls(
            store_id=store_id,
            start=datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC),
            end=datetime(last_day.year, last_day.month, last_day.day, tzinfo=UTC)
            + timedelta(days=1),
            market=market.upper() if market else None,
            currency=currency,
        )


def month_key(moment: ir.TimestampValue) -> ir.IntegerValue:
    """Months since year 0 (year * 12 + month - 1), the same on every engine."""
    return moment.year().cast("int64") * 12 + moment.month().cast("int64") - 1


def month_label(key: int) -> str:
    """Render a month key as YYYY-MM."""
    return f"{key // 12:04d}-{key % 12 + 1:02d}"


def paid_orders(engine: AnalyticsEngine, query: KpiQuery) -> ir.Table:
    """The store's paid orders up to the end of the period (in the market, if one is chosen)."""
    orders = engine.table("orders")
    selected = orders.filter(
        orders.store_id == query.store_id,
        orders.status.isin(REVENUE_STATUSES),
        orders.placed_at < _naive(query.end),
    )
    if query.market:
        selected = selected.filter(selected.market == query.market)
    net = selected.total_base - selected.refunded_base
    return selected.select(
        customer_id=selected.customer_id,
        market=selected.market.fill_null(UNKNOWN_MARKET),
        placed_at=selected.placed_at,
        month=month_key(selected.placed_at),
        in_period=selected.placed_at >= _naive(query.start),
        gross=selected.total_base,
        net=net,
        is_purchase=net > 0,
    )


def store_kpis(engine: AnalyticsEngine, query: KpiQuery) -> dict[str, Any]:
    """Compute every KPI of the store for the query; money as decimal strings."""
    paid = paid_orders(engine, query)
    totals = _totals(engine, paid, query)
    customers = _customer_counts(engine, paid, query)
    members = _members(engine, query, customers, totals)
    return {
        "store_id": query.store_id,
        "period": {
            "from": query.start.date().isoformat(),
            "to": (query.end - timedelta(days=1)).date().isoformat(),
        },
        "market": query.market,
        "currency": query.currency,
        "orders": totals["orders"],
        "revenue": {
            "gross": _money(totals["gross"], query),
            "refunds": _money(totals["gross"] - totals["net"], query),
            "net": _money(totals["net"], query),
        },
        "average_order_value": _money(_divide(totals["net"], totals["orders"]), query),
        "customers": {
            "active": customers["active"],
            "new": customers["new"],
            "returning": customers["returning"],
        },
        "repurchase_rate": {
            "period": _ratio(customers["repeat_in_period"], customers["active"]),
            "lifetime": _ratio(customers["repeat_lifetime"], customers["buyers_lifetime"]),
        },
        "members": members,
        "by_month": _by_month(engine, paid, query),
        "by_market": _by_market(engine, paid, query),
        "cohorts": _cohorts(engine, paid, query),
        "funnel": _funnel(engine, query),
    }


def _totals(engine: AnalyticsEngine, paid: ir.Table, query: KpiQuery) -> dict[str, int]:
    period = paid.filter(paid.in_period)
    with_customer = period.customer_id.notnull()
    expression = period.aggregate(
        orders=period.is_purchase.ifelse(1, 0).sum().cast("int64"),
        gross=period.gross.sum().cast("int64"),
        net=period.net.sum().cast("int64"),
        identified_net=period.net.sum(where=with_customer).cast("int64"),
    )
    row = engine.fetch(expression)[0]
    return {key: int(value or 0) for key, value in row.items()}


def _per_customer(paid: ir.Table) -> ir.Table:
    """Per customer: purchases in and before the period, over the lifetime, the first month."""
    purchases = paid.filter(paid.is_purchase, paid.customer_id.notnull())
    return purchases.group_by("customer_id").aggregate(
        in_period=purchases.in_period.ifelse(1, 0).sum(),
        before=(~purchases.in_period).ifelse(1, 0).sum(),
        lifetime=purchases.count(),
        period_net=purchases.net.sum(where=purchases.in_period),
    )


def _customer_counts(engine: AnalyticsEngine, paid: ir.Table, query: KpiQuery) -> dict[str, int]:
    people = _per_customer(paid)
    active = people.in_period >= 1
    expression = people.aggregate(
        active=active.ifelse(1, 0).sum(),
        new=(active & (people.before == 0)).ifelse(1, 0).sum(),
        returning=(active & (people.before >= 1)).ifelse(1, 0).sum(),
        repeat_in_period=(people.in_period >= 2).ifelse(1, 0).sum(),
        buyers_lifetime=people.count(),
        repeat_lifetime=(people.lifetime >= 2).ifelse(1, 0).sum(),
        returning_net=people.period_net.sum(where=active & (people.before >= 1)),
    )
    row = engine.fetch(expression)[0]
    return {key: int(value or 0) for key, value in row.items()}


def _members(
    engine: AnalyticsEngine, query: KpiQuery, customers: dict[str, int], totals: dict[str, int]
) -> dict[str, Any]:
    people = live_customers(engine.table("customers"), query.store_id)
    count = int(engine.fetch(people.aggregate(members=people.count()))[0]["members"] or 0)
    return {
        "definition": "customers (until a loyalty membership exists)",
        "count": count,
        "activity_rate": _ratio(customers["active"], count),
        "revenue_share": _ratio(totals["identified_net"], totals["net"]),
        "returning_revenue_share": _ratio(customers["returning_net"], totals["net"]),
    }


def _by_month(engine: AnalyticsEngine, paid: ir.Table, query: KpiQuery) -> list[dict[str, Any]]:
    period = paid.filter(paid.in_period)
    monthly = period.group_by("month").aggregate(
        orders=period.is_purchase.ifelse(1, 0).sum(),
        gross=period.gross.sum(),
        net=period.net.sum(),
        active=period.customer_id.nunique(where=period.is_purchase),
    )
    rows = {row["month"]: row for row in engine.fetch(monthly)}
    # First and second purchase month of every customer, for new customers and the lifetime
    # repurchase rate as of each month's end.
    purchases = paid.filter(paid.is_purchase, paid.customer_id.notnull())
    ordered = purchases.mutate(
        position=ibis.row_number().over(
            group_by=purchases.customer_id, order_by=[purchases.placed_at, purchases.gross]
        )
    )
    milestones = ordered.filter(ordered.position <= 1)
    firsts = milestones.group_by(["position", "month"]).aggregate(customers=milestones.count())
    started: dict[int, int] = {}
    repeated: dict[int, int] = {}
    for row in engine.fetch(firsts):
        target = started if row["position"] == 0 else repeated
        target[row["month"]] = int(row["customers"])
    first_month, last_month = month_key_of(query.start), month_key_of(query.end - timedelta(1))
    buyers = sum(count for month, count in started.items() if month < first_month)
    repeaters = sum(count for month, count in repeated.items() if month < first_month)
    series = []
    for month in range(first_month, last_month + 1):
        buyers += started.get(month, 0)
        repeaters += repeated.get(month, 0)
        row = rows.get(month, {})
        net, orders = int(row.get("net") or 0), int(row.get("orders") or 0)
        series.append(
            {
                "month": month_label(month),
                "orders": orders,
                "gross": _money(int(row.get("gross") or 0), query),
                "net": _money(net, query),
                "average_order_value": _money(_divide(net, orders), query),
                "active_customers": int(row.get("active") or 0),
                "new_customers": started.get(month, 0),
                "repurchase_rate": _ratio(repeaters, buyers),
            }
        )
    return series


def _by_market(engine: AnalyticsEngine, paid: ir.Table, query: KpiQuery) -> list[dict[str, Any]]:
    period = paid.filter(paid.in_period)
    purchases = period.filter(period.is_purchase, period.customer_id.notnull())
    per_customer = purchases.group_by(["market", "customer_id"]).aggregate(
        purchases=purchases.count()
    )
    repeaters = per_customer.group_by("market").aggregate(
        customers=per_customer.count(),
        repeat_customers=(per_customer.purchases >= 2).ifelse(1, 0).sum(),
    )
    money = period.group_by("market").aggregate(
        orders=period.is_purchase.ifelse(1, 0).sum(), gross=period.gross.sum(), net=period.net.sum()
    )
    people = {row["market"]: row for row in engine.fetch(repeaters)}
    result = []
    for row in sorted(engine.fetch(money), key=lambda item: -int(item["net"] or 0)):
        market_people = people.get(row["market"], {})
        customers = int(market_people.get("customers") or 0)
        net, orders = int(row["net"] or 0), int(row["orders"] or 0)
        result.append(
            {
                "market": row["market"],
                "orders": orders,
                "gross": _money(int(row["gross"] or 0), query),
                "net": _money(net, query),
                "average_order_value": _money(_divide(net, orders), query),
                "customers": customers,
                "repurchase_rate": _ratio(
                    int(market_people.get("repeat_customers") or 0), customers
                ),
            }
        )
    return result


def _cohorts(engine: AnalyticsEngine, paid: ir.Table, query: KpiQuery) -> list[dict[str, Any]]:
    """Customers by first-purchase month in the period; the share purchasing in month k after."""
    purchases = paid.filter(paid.is_purchase, paid.customer_id.notnull())
    firsts = purchases.group_by("customer_id").aggregate(cohort=purchases.month.min())
    firsts = firsts.rename(cohort_customer_id="customer_id")
    joined = purchases.inner_join(firsts, [("customer_id", "cohort_customer_id")])
    first_month = month_key_of(query.start)
    joined = joined.filter(joined.cohort >= first_month)
    activity = joined.select(
        customer_id=joined.customer_id, cohort=joined.cohort, offset=joined.month - joined.cohort
    )
    counts = activity.group_by(["cohort", "offset"]).aggregate(
        customers=activity.customer_id.nunique()
    )
    table: dict[int, dict[int, int]] = {}
    for row in engine.fetch(counts):
        table.setdefault(int(row["cohort"]), {})[int(row["offset"])] = int(row["customers"])
    last_month = month_key_of(query.end - timedelta(1))
    cohorts = []
    for cohort in sorted(table):
        size = table[cohort].get(0, 0)
        horizon = min(last_month - cohort, MAX_COHORT_MONTHS)
        cohorts.append(
            {
                "cohort": month_label(cohort),
                "customers": size,
                "retention": [
                    _ratio(table[cohort].get(offset, 0), size) for offset in range(horizon + 1)
                ],
            }
        )
    return cohorts


def _funnel(engine: AnalyticsEngine, query: KpiQuery) -> list[dict[str, Any]]:
    """Distinct people and sessions reaching each step (sessions end after 30 idle minutes)."""
    events = engine.table("events")
    selected = events.filter(
        events.store_id == query.store_id,
        events.occurred_at >= _naive(query.start),
        events.occurred_at < _naive(query.end),
        events.customer_id.notnull() | events.anonymous_id.notnull(),
    )
    person = ibis.cases(
        (selected.customer_id.notnull(), "c" + selected.customer_id.cast("string")),
        else_="a" + selected.anonymous_id,
    )
    timed = selected.select(
        person=person, name=selected.name, seconds=epoch_seconds(selected.occurred_at)
    )
    window = ibis.window(group_by=timed.person, order_by=[timed.seconds, timed.name])
    previous = timed.seconds.lag().over(window)
    starts = timed.mutate(
        starts_session=(previous.isnull() | (timed.seconds - previous > SESSION_GAP_SECONDS))
        .ifelse(1, 0)
        .cast("int64")
    )
    numbered = starts.mutate(
        session=starts.starts_session.cumsum().over(
            ibis.window(group_by=starts.person, order_by=[starts.seconds, starts.name])
        )
    )
    steps = numbered.filter(numbered.name.isin(FUNNEL_STEPS))
    session_key = steps.person + ":" + steps.session.cast("string")
    counts = steps.group_by("name").aggregate(
        people=steps.person.nunique(), sessions=session_key.nunique()
    )
    found = {row["name"]: row for row in engine.fetch(counts)}
    funnel = []
    previous_people: int | None = None
    for step in FUNNEL_STEPS:
        row = found.get(step, {})
        people, sessions = int(row.get("people") or 0), int(row.get("sessions") or 0)
        funnel.append(
            {
                "step": step,
                "people": people,
                "sessions": sessions,
                "conversion_from_previous": (
                    None if previous_people is None else _ratio(people, previous_people)
                ),
            }
        )
        previous_people = people
    return funnel


def month_key_of(moment: datetime) -> int:
    """The month key of a Python datetime (see `month_key`)."""
    return moment.year * 12 + moment.month - 1


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def _divide(numerator: int, denominator: int) -> int:
    return numerator // denominator if denominator else 0


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 6) if denominator else None


def _money(units: int, query: KpiQuery) -> str:
    return str(quantize(Decimal(units).scaleb(-4), query.currency))
