"""The demo store simulation and the bulk writer that builds it into a database.

The simulation is a pure function of (seed, number of customers, as-of date): every customer draws
from their own random stream, so the same inputs give the same people, orders and events on every
run and machine, whatever the wall clock says.

The story: a home-and-living seller in Shenzhen (store time zone Asia/Shanghai, base currency USD)
sells to twelve markets. Customers arrive over ~2.7 years with growth and holiday peaks. Each buyer
has a latent purchase rate (gamma distributed) and, after every purchase, a chance to drop out for
good (beta distributed): the BG/NBD story, so most buy once, some often, many stop. Orders follow
placed → paid → shipped → delivered with routes from 3 to 28 days, late parcels, cancellations,
returns and partial refunds; behavioural events and email engagement surround them.
"""

from __future__ import annotations

import bisect
import gc
import hashlib
import itertools
import math
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from decimal import ROUND_CEILING, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import Engine, func, insert, select, text, update
from sqlalchemy.orm import Session

from patronage.catalog.models import Product
from patronage.customers.models import Customer
from patronage.customers.schemas import ConsentIn, CustomerIn
from patronage.customers.service import resolve_customers
from patronage.db.base import table_of
from patronage.db.session import session_scope
from patronage.demo.catalog import (
    CATEGORIES,
    PRODUCTS_BY_CATEGORY,
    PRODUCTS_BY_SKU,
    ProductSpec,
    product_rows,
)
from patronage.demo.markets import (
    BASE_CURRENCY,
    CURRENCIES,
    HOLIDAYS,
    MARKETS,
    STORE_LANGUAGE,
    STORE_NAME,
    STORE_TIMEZONE,
    Market,
    Route,
    daily_demand,
    holidays_between,
    lunar_new_year,
    weighted_choice,
)
from patronage.demo.people import (
    MAX_PEOPLE,
    Person,
    make_birthday,
    make_email,
    make_person,
    make_phone,
)
from patronage.demo.replay import (
    HistoryReplay,
    Member,
    ReplayOrder,
    membership_summary,
    month_steps,
)
from patronage.demo.timeline import Timeline, cut_at, timeline_of
from patronage.errors import ValidationFailedError
from patronage.kit.clock import FrozenClock, get_clock, set_clock
from patronage.kit.money import quantize
from patronage.loyalty.program import default_program, set_program
from patronage.loyalty.rewards import seeded_codes
from patronage.orders import repository as order_repository
from patronage.orders.fx import load_rate_book
from patronage.orders.models import ExchangeRate, Order, OrderLine, Refund
from patronage.orders.schemas import LineIn, OrderIn, RefundIn
from patronage.stores.models import Store
from patronage.stores.service import create_store
from patronage.tracking.models import Event

DEFAULT_SEED = 7
DEFAULT_CUSTOMERS = 2_000
DEFAULT_AS_OF = date(2026, 11, 1)
HISTORY_DAYS = 1_000
BATCH_SIZE = 1_000
SOURCE = "shopify"
MAX_CUSTOMERS = MAX_PEOPLE

# The buying story (rates per year): gamma-distributed purchase rates, beta-distributed dropout.
PURCHASE_RATE_SHAPE = 0.8
PURCHASE_RATE_SCALE = 3.2
DROPOUT_A = 1.1
DROPOUT_B = 2.6
LEAD_SHARE = 0.12  # signed up or browsed but never ordered
# Trade buyers (decorators, small shops) buy for others: often, in quantity, and they stay. They
# are the members who reach the top tiers. Drawn from a stream of their own, so that adding them
# left every other customer as they were.
TRADE_SHARE = 0.025
TRADE_PURCHASE_RATE = (8.0, 16.0)  # orders a year
TRADE_BASKET_SCALE = (4, 16)  # units per line, times a consumer's
MAX_ORDERS_PER_CUSTOMER = 80
ANNUAL_GROWTH = 0.75  # acquisition grows by e**0.75 ≈ 2.1 times a year
TRACKED_SHARE = 0.7  # customers whose browsing the store's tracking snippet recognises
APP_LAUNCH_DAY = 240

# Relative likelihood of each local hour for shopping.
HOUR_WEIGHTS = (0.6, 0.4, 0.25, 0.2, 0.2, 0.3, 0.6, 1.0, 1.4, 1.7, 1.9, 2.0, 2.3, 2.2, 2.0, 1.9,
                1.9, 2.0, 2.3, 2.8, 3.2, 3.3, 2.8, 1.6)  # fmt: skip
_HOUR_CUMULATIVE = tuple(sum(HOUR_WEIGHTS[: hour + 1]) for hour in range(24))

LINE_COUNTS = ((1, 0.58), (2, 0.27), (3, 0.10), (4, 0.05))
ACQUISITION_CHANNELS = (
    ("organic_search", 0.22), ("paid_social", 0.2), ("google_ads", 0.15), ("instagram", 0.1),
    ("tiktok", 0.1), ("referral", 0.06), ("email_signup", 0.07), ("marketplace", 0.05),
    ("influencer", 0.05),
)  # fmt: skip
ORDER_CHANNELS = (("web", 0.66), ("app", 0.24), ("social", 0.10))
DELAYED_PAYMENTS = {"konbini", "boleto"}  # paid hours or days later, or never
CASH_ON_DELIVERY = "cash_on_delivery"

# Holiday promotions: the code (plus the two-digit year) and its percentage off.
PROMOTIONS: dict[str, tuple[str, str]] = {
    "black_friday": ("BLACKFRIDAY", "0.20"), "white_friday": ("WHITEFRIDAY", "0.20"),
    "black_friday_brazil": ("BLACKFRIDAY", "0.25"), "cyber_monday": ("CYBER", "0.20"),
    "singles_day": ("1111SALE", "0.15"), "click_frenzy": ("FRENZY", "0.15"),
    "diwali": ("DIWALI", "0.15"), "ramadan": ("RAMADAN", "0.10"), "eid_al_fitr": ("EID", "0.15"),
    "summer_sale": ("SUMMER", "0.15"), "winter_sales": ("SOLDES", "0.20"),
    "summer_sales": ("SOLDES", "0.20"), "rebajas_winter": ("REBAJAS", "0.20"),
    "rebajas_summer": ("REBAJAS", "0.20"), "korea_sale_festa": ("FESTA", "0.10"),
    "eofy_sales": ("EOFY", "0.15"), "boxing_day": ("BOXINGDAY", "0.20"),
    "september_festival": ("SEPTFEST", "0.10"), "christmas": ("XMAS", "0.10"),
    "year_end_japan": ("OSEIBO", "0.10"), "independence_day_sale": ("FREEDOM", "0.15"),
    "saudi_national_day": ("NATIONALDAY", "0.15"), "mothers_day_may": ("MOM", "0.10"),
    "chuseok": ("CHUSEOK", "0.10"),
}  # fmt: skip

WARRANTY_CLAIM_SHARE = 0.05  # delivered orders with an item under warranty that fails later
RETURN_REASONS = ("wrong size", "not as described", "changed mind", "damaged in transit",
                  "defective")  # fmt: skip
GOODWILL_REASONS = ("damaged item kept", "missing accessory", "packaging damaged")

_ZONES: dict[str, ZoneInfo] = {}


def _zone(name: str) -> ZoneInfo:
    zone = _ZONES.get(name)
    if zone is None:
        zone = _ZONES[name] = ZoneInfo(name)
    return zone


def _stream(seed: int, index: int, stream: int) -> random.Random:
    """An independent random stream per (seed, customer, purpose)."""
    return random.Random((seed << 40) | (index << 3) | stream)


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's method; the means here are small)."""
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _local_moment(
    rng: random.Random, day: date, zone: ZoneInfo, first_hour: int = 0, last_hour: int = 23
) -> datetime:
    """A moment on `day` in `zone` at a realistic shopping hour, returned in UTC."""
    low = _HOUR_CUMULATIVE[first_hour - 1] if first_hour > 0 else 0.0
    high = _HOUR_CUMULATIVE[last_hour]
    hour = bisect.bisect_right(_HOUR_CUMULATIVE, low + rng.random() * (high - low))
    hour = min(max(hour, first_hour), last_hour)
    moment = datetime.combine(
        day, clock_time(hour, int(rng.random() * 60), int(rng.random() * 60)), tzinfo=zone
    )
    return moment.astimezone(UTC)


@dataclass(slots=True)
class CustomerPlan:
    """The first pass over a customer: who, where, and when they order."""

    index: int
    market: Market
    timezone: str
    first_seen_at: datetime
    is_buyer: bool
    purchase_rate: float  # purchases per year while alive
    dropout_probability: float
    alive: bool
    order_times: list[datetime]
    order_numbers: list[int] = field(default_factory=list)
    basket_scale: int = 1  # units per line, times a consumer's (trade buyers buy in quantity)


@dataclass
class DemoBatch:
    """Customers, their orders and their events, ready for the bulk paths."""

    customers: list[CustomerIn]
    orders: list[OrderIn]
    events: list[dict[str, Any]]  # rows for the events table, without store_id and customer_id
    event_customers: list[int]  # for each event, the position of its customer in `customers`
    # For each order: its whole life (also after the as-of moment) and its customer's position.
    timelines: list[Timeline] = field(default_factory=list)
    order_customers: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Campaign:
    """A marketing email sent to a market's subscribers."""

    campaign_id: str
    name: str
    day: date


@dataclass
class _Basket:
    lines: list[LineIn]
    products: list[ProductSpec]


class DemoSimulation:
    """The deterministic world of the demo store for one (seed, size, as-of date)."""

    def __init__(self, *, seed: int, customers: int, as_of: date) -> None:
        if seed < 0:
            raise ValidationFailedError("the seed must be zero or positive")
        if not 1 <= customers <= MAX_CUSTOMERS:
            raise ValidationFailedError(f"customers must be between 1 and {MAX_CUSTOMERS:,}")
        self.seed = seed
        self.customer_count = customers
        self.as_of = as_of
        self.as_of_moment = datetime.combine(as_of, clock_time(0), tzinfo=UTC)
        self.start = as_of - timedelta(days=HISTORY_DAYS)
        self.days = HISTORY_DAYS
        self.demand = {
            market.code: daily_demand(market, self.start, self.days) for market in MARKETS
        }
        self.peak_demand = {code: max(values) for code, values in self.demand.items()}
        self._acquisition = {market.code: self._acquisition_weights(market) for market in MARKETS}
        self._market_offset = random.Random(seed).random()
        self._market_cumulative = tuple(
            sum(market.customer_share for market in MARKETS[: position + 1])
            for position in range(len(MARKETS))
        )
        self.rates = self._exchange_rates()
        self._promotions = {market.code: self._promotion_calendar(market) for market in MARKETS}
        self.campaigns = {market.code: self._campaigns(market) for market in MARKETS}
        self.campaign_days = {
            code: [campaign.day for campaign in campaigns]
            for code, campaigns in self.campaigns.items()
        }
        self.category_weights = {
            market.code: self._category_cumulative(market) for market in MARKETS
        }
        self._product_cumulative = {
            code: (products, tuple(itertools.accumulate(p.popularity for p in products)))
            for code, products in PRODUCTS_BY_CATEGORY.items()
        }
        self._prices: dict[tuple[str, str, int], Decimal] = {}
        self._timelines: dict[str, Timeline] = {}
        self._routes = {
            market.code: tuple((route, route.share) for route in market.routes)
            for market in MARKETS
        }
        self._money = {
            market.code: (Decimal(str(market.free_shipping_over_usd)),
                          Decimal(str(market.shipping_fee_usd)), Decimal(str(market.tax_rate)),
                          Decimal(str(market.price_index)))
            for market in MARKETS
        }  # fmt: skip
        # The warehouse in China closes from five days before the Lunar New Year to eight after.
        self._warehouse_breaks = [
            (
                datetime.combine(day - timedelta(days=5), clock_time(0), tzinfo=UTC),
                datetime.combine(day + timedelta(days=8), clock_time(0), tzinfo=UTC),
            )
            for year in range(self.start.year - 1, as_of.year + 2)
            if (day := lunar_new_year(year)) is not None
        ]

    # --- The calendar -------------------------------------------------------------------------

    def day_of(self, moment: datetime) -> int:
        """Days from the first simulated day to the (UTC) date of `moment`."""
        return (moment.date() - self.start).days

    def _acquisition_weights(self, market: Market) -> list[float]:
        cumulative, running = [], 0.0
        for offset in range(self.days):
            weight = 0.0
            if market.launch_day <= offset < self.days - 2:
                growth = math.exp(ANNUAL_GROWTH * offset / 365)
                weight = growth * self.demand[market.code][offset] ** 0.7
            running += weight
            cumulative.append(running)
        return cumulative

    def _exchange_rates(self) -> dict[str, list[Decimal]]:
        """Daily rates (USD per unit) for each currency: a mean-reverting walk ending at today's."""
        rng = random.Random(f"exchange-rates:{self.seed}")
        rates: dict[str, list[Decimal]] = {}
        total_days = self.days + 31
        for code in sorted(CURRENCIES):
            profile = CURRENCIES[code]
            if code == BASE_CURRENCY:
                continue
            anchor = math.log(profile.usd_per_unit)
            daily = profile.annual_volatility / math.sqrt(365)
            level = anchor
            backwards = []
            for _ in range(total_days):
                backwards.append(level)
                level += daily * rng.gauss(0.0, 1.0) - 0.004 * (level - anchor)
            rates[code] = [Decimal(f"{math.exp(value):.10f}") for value in reversed(backwards)]
        return rates

    def rate(self, currency: str, day: date) -> Decimal:
        """USD per unit of `currency` on `day` (the walk covers the history and a month before)."""
        if currency == BASE_CURRENCY:
            return Decimal(1)
        series = self.rates[currency]
        offset = (day - self.start).days + 31
        return series[min(max(offset, 0), len(series) - 1)]

    def exchange_rate_rows(self, store_id: int) -> list[dict[str, Any]]:
        """The daily rates as rows for the exchange_rates table."""
        first = self.start - timedelta(days=31)
        return [
            {
                "store_id": store_id,
                "currency": code,
                "rate_date": first + timedelta(days=offset),
                "rate": value,
                "source": "demo",
            }
            for code, series in self.rates.items()
            for offset, value in enumerate(series)
        ]

    def _promotion_calendar(self, market: Market) -> list[tuple[str, Decimal] | None]:
        calendar: list[tuple[str, Decimal] | None] = [None] * self.days
        margin = timedelta(days=30)
        end = self.start + timedelta(days=self.days)
        for occurrence in holidays_between(market, self.start - margin, end + margin):
            promotion = PROMOTIONS.get(occurrence.key)
            if promotion is None:
                continue
            holiday = HOLIDAYS[occurrence.key]
            code = f"{promotion[0]}{occurrence.day.year % 100:02d}"
            peak = (occurrence.day - self.start).days
            for offset in range(peak - min(holiday.before, 7), peak + holiday.after + 1):
                if 0 <= offset < self.days and calendar[offset] is None:
                    calendar[offset] = (code, Decimal(promotion[1]))
        return calendar

    def _campaigns(self, market: Market) -> list[Campaign]:
        """Fortnightly newsletters plus a campaign ahead of each of the market's holidays."""
        campaigns = []
        first_tuesday = self.start + timedelta(days=(1 - self.start.weekday()) % 7)
        day = first_tuesday
        while day < self.as_of:
            campaigns.append(
                Campaign(f"newsletter-{day.isoformat()}", "Fortnightly newsletter", day)
            )
            day += timedelta(days=14)
        for occurrence in holidays_between(market, self.start, self.as_of - timedelta(days=1)):
            holiday = HOLIDAYS[occurrence.key]
            send = occurrence.day - timedelta(days=min(holiday.before, 5))
            if self.start <= send < self.as_of:
                campaigns.append(
                    Campaign(
                        f"{occurrence.key}-{occurrence.day.year}-{market.code}",
                        occurrence.name,
                        send,
                    )
                )
        return sorted(campaigns, key=lambda campaign: (campaign.day, campaign.campaign_id))

    def _category_cumulative(self, market: Market) -> tuple[tuple[str, ...], tuple[float, ...]]:
        codes = tuple(CATEGORIES)
        weights = [
            market.category_affinity.get(code, 1.0)
            * sum(product.popularity for product in PRODUCTS_BY_CATEGORY[code])
            for code in codes
        ]
        return codes, tuple(itertools.accumulate(weights))

    # --- Pass one: who buys when ------------------------------------------------------------

    def market_of(self, index: int) -> Market:
        """The customer's market: a low-discrepancy draw, so every size keeps the market shares."""
        draw = (self._market_offset + index * 0.6180339887498949) % 1.0
        position = bisect.bisect_right(self._market_cumulative, draw * self._market_cumulative[-1])
        return MARKETS[min(position, len(MARKETS) - 1)]

    def plan_customer(self, index: int) -> CustomerPlan:
        """Draw the customer's market, arrival, latent buying rate, dropout and order times."""
        rng = _stream(self.seed, index, 0)
        market = self.market_of(index)
        timezone = weighted_choice(market.timezones, rng.random())
        zone = _zone(timezone)
        weights = self._acquisition[market.code]
        arrival = bisect.bisect_right(weights, rng.random() * weights[-1])
        arrival = min(arrival, self.days - 3)
        is_buyer = rng.random() >= LEAD_SHARE
        purchase_rate = rng.gammavariate(PURCHASE_RATE_SHAPE, PURCHASE_RATE_SCALE)
        dropout = rng.betavariate(DROPOUT_A, DROPOUT_B)
        arrival_day = self.start + timedelta(days=arrival)
        first_moment = _local_moment(rng, arrival_day, zone)
        if not is_buyer:
            return CustomerPlan(
                index, market, timezone, first_moment, False, purchase_rate, dropout, True, []
            )
        first_seen = first_moment - timedelta(minutes=rng.choice((5, 20, 60, 600, 2880, 8000)))
        trade = _stream(self.seed, index, 3)
        basket_scale = 1
        if trade.random() < TRADE_SHARE:
            purchase_rate = max(purchase_rate, trade.uniform(*TRADE_PURCHASE_RATE))
            dropout = min(dropout, 0.02)
            basket_scale = trade.randint(*TRADE_BASKET_SCALE)
        order_times = [first_moment]
        alive = rng.random() >= dropout
        demand = self.demand[market.code]
        peak = self.peak_demand[market.code]
        daily_rate = purchase_rate / 365 * peak
        moment = float(arrival) + 0.5
        while alive and len(order_times) < MAX_ORDERS_PER_CUSTOMER and daily_rate > 0:
            moment += rng.expovariate(daily_rate)
            if moment >= self.days:
                break
            if rng.random() * peak >= demand[int(moment)]:
                continue  # thinning: demand is lower than at its peak on this day
            placed = _local_moment(rng, self.start + timedelta(days=int(moment)), zone)
            if placed >= self.as_of_moment:
                break
            if placed > order_times[-1]:
                order_times.append(placed)
                alive = rng.random() >= dropout
        return CustomerPlan(
            index,
            market,
            timezone,
            first_seen,
            True,
            purchase_rate,
            dropout,
            alive,
            order_times,
            basket_scale=basket_scale,
        )

    def plan(self) -> list[CustomerPlan]:
        """Plan every customer and number the orders in the order they were placed (#1001 …)."""
        plans = [self.plan_customer(index) for index in range(self.customer_count)]
        placements = sorted(
            (moment, plan.index, position)
            for plan in plans
            for position, moment in enumerate(plan.order_times)
        )
        for plan in plans:
            plan.order_numbers = [0] * len(plan.order_times)
        for rank, (_, index, position) in enumerate(placements):
            plans[index].order_numbers[position] = rank
        return plans

    # --- Pass two: the details ----------------------------------------------------------------

    def batches(self, batch_size: int = BATCH_SIZE) -> Iterator[DemoBatch]:
        """Yield the store's customers, orders and events in batches of `batch_size` customers."""
        plans = self.plan()
        emails: set[str] = set()
        for start in range(0, len(plans), batch_size):
            batch = DemoBatch([], [], [], [])
            for plan in plans[start : start + batch_size]:
                self._build_customer(plan, emails, batch)
            yield batch

    def _build_customer(self, plan: CustomerPlan, emails: set[str], batch: DemoBatch) -> None:
        rng = _stream(self.seed, plan.index, 1)
        market = plan.market
        person = make_person(rng, market)
        birthday = make_birthday(rng, self.as_of) if rng.random() < 0.4 else None
        email = make_email(rng, person, market, birthday.year if birthday else None, emails)
        phone = make_phone(rng, market, plan.index) if rng.random() < market.phone_share else None
        channel = weighted_choice(ACQUISITION_CHANNELS, rng.random())
        has_shopify_id = plan.is_buyer or rng.random() < 0.6
        shopify_id = str(6_800_000_000_000 + plan.index * 1_009 + plan.index * 7_919 % 997)
        identities: list[tuple[str, str]] = []
        user_id = None
        if has_shopify_id:
            identities.append(("shopify", shopify_id))
            if rng.random() < 0.45:
                user_id = shopify_id
                identities.append(("user_id", user_id))
        anonymous_id = None
        if rng.random() < TRACKED_SHARE:
            anonymous_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            identities.append(("anonymous_id", anonymous_id))
        consents, subscribed_until = self._consents(rng, plan, phone)
        tags = ["newsletter"] if subscribed_until is not None else []
        if rng.random() < 0.006:
            tags.append("wholesale")
        if channel == "influencer":
            tags.append("influencer")
        if plan.basket_scale > 1:
            tags.append("trade")
        engagement = rng.betavariate(1.2, 6.0)
        customer = CustomerIn(
            source=SOURCE if has_shopify_id else "tracking",
            email=email,
            phone=phone,
            first_name=person.first_name,
            last_name=person.last_name,
            country=market.code,
            language=person.language,
            timezone=plan.timezone,
            currency=market.currency,
            birthday=birthday,
            tags=tags,
            attributes={
                "acquisition_channel": channel,
                "simulation": {
                    "purchase_rate_per_year": round(plan.purchase_rate, 4),
                    "dropout_probability": round(plan.dropout_probability, 4),
                    "alive": plan.alive if plan.is_buyer else None,
                    "email_open_probability": round(engagement, 4),
                },
            },
            identities=identities,
            consents=consents,
            seen_at=plan.first_seen_at,
        )
        position = len(batch.customers)
        batch.customers.append(customer)
        events = _EventLog(
            self.seed, plan.index, rng, plan.timezone, person, market, anonymous_id, user_id
        )
        if not plan.is_buyer:
            events.identified_from = plan.first_seen_at  # signed up without ordering
        orders = self._orders(rng, plan, email, events)
        batch.orders.extend(orders)
        batch.timelines.extend(self._timelines.pop(order.external_id) for order in orders)
        batch.order_customers.extend([position] * len(orders))
        self._browsing(rng, plan, orders, events)
        if subscribed_until is not None:
            self._email_engagement(rng, plan, subscribed_until, engagement, events)
        batch.events.extend(events.rows)
        batch.event_customers.extend([position] * len(events.rows))

    def _consents(
        self, rng: random.Random, plan: CustomerPlan, phone: str | None
    ) -> tuple[dict[str, ConsentIn], datetime | None]:
        """Consent per channel, and until when marketing email may be sent (None: never)."""
        market, seen = plan.market, plan.first_seen_at
        consents: dict[str, ConsentIn] = {}
        subscribed_until = None
        if rng.random() < market.email_optin:
            source = weighted_choice(
                (("checkout", 0.55), ("popup", 0.3), ("account", 0.15)), rng.random()
            )
            if market.double_optin and rng.random() < 0.12:
                consents["email"] = ConsentIn("pending", source, seen)
            elif rng.random() < 0.14:
                left = seen + (self.as_of_moment - seen) * rng.random()
                consents["email"] = ConsentIn("unsubscribed", "unsubscribe_link", left)
                subscribed_until = left
            else:
                consents["email"] = ConsentIn("subscribed", source, seen)
                subscribed_until = self.as_of_moment
        else:
            consents["email"] = ConsentIn("not_subscribed", "checkout", seen)
        if phone is not None:
            sms = "subscribed" if rng.random() < market.sms_optin else "not_subscribed"
            consents["sms"] = ConsentIn(sms, "checkout", seen)
            whatsapp = "subscribed" if rng.random() < market.whatsapp_optin else "not_subscribed"
            consents["whatsapp"] = ConsentIn(whatsapp, "whatsapp_widget", seen)
        return consents, subscribed_until

    # --- Orders ---------------------------------------------------------------------------

    def local_price(self, product: ProductSpec, market: Market, day: date) -> Decimal:
        """The product's list price in the market's currency, reset each quarter."""
        quarter = (day - self.start).days // 91
        key = (product.sku, market.code, quarter)
        price = self._prices.get(key)
        if price is None:
            quarter_start = self.start + timedelta(days=91 * max(quarter, 0))
            price = self._to_local(
                product.price * self._money[market.code][3], market, quarter_start
            )
            self._prices[key] = price
        return price

    def _to_local(self, usd: Decimal, market: Market, day: date) -> Decimal:
        """Convert US dollars to a local price point (18.99 EUR, 2,980 JPY, 1,499 INR)."""
        if market.currency == BASE_CURRENCY:
            return quantize(usd, BASE_CURRENCY)
        profile = CURRENCIES[market.currency]
        amount = usd / self.rate(market.currency, day)
        step = Decimal(profile.price_step)
        rounded = (amount / step).to_integral_value(rounding=ROUND_CEILING) * step
        return quantize(rounded - Decimal(str(profile.price_ending)), market.currency)

    def _basket(
        self,
        rng: random.Random,
        market: Market,
        day: date,
        favourites: tuple[str, str],
        consumables: dict[str, date],
    ) -> _Basket:
        count = weighted_choice(LINE_COUNTS, rng.random())
        chosen: list[ProductSpec] = []
        due = [
            sku
            for sku, bought in consumables.items()
            if (day - bought).days >= 0.6 * (PRODUCTS_BY_SKU[sku].replenishment_days or 0)
        ]
        if due and rng.random() < 0.55:
            chosen.append(PRODUCTS_BY_SKU[rng.choice(sorted(due))])
        codes, cumulative = self.category_weights[market.code]
        attempts = 0
        while len(chosen) < count and attempts < 12:
            attempts += 1
            if rng.random() < 0.55:
                category = favourites[0] if rng.random() < 0.65 else favourites[1]
            else:
                category = codes[bisect.bisect_right(cumulative, rng.random() * cumulative[-1])]
            products, weights = self._product_cumulative[category]
            product = products[bisect.bisect_right(weights, rng.random() * weights[-1])]
            if product not in chosen:
                chosen.append(product)
        lines = []
        for product in chosen:
            if product.is_consumable:
                quantity = weighted_choice(((1, 0.65), (2, 0.25), (3, 0.10)), rng.random())
            else:
                quantity = 1 if rng.random() < 0.93 else 2
            lines.append(
                LineIn(
                    title=product.title,
                    quantity=quantity,
                    unit_price=self.local_price(product, market, day),
                    sku=product.sku,
                    category=product.category,
                )
            )
        return _Basket(lines, chosen)

    def _coupon(
        self, rng: random.Random, plan: CustomerPlan, position: int, day_index: int
    ) -> tuple[str, Decimal] | None:
        promotion = self._promotions[plan.market.code][min(max(day_index, 0), self.days - 1)]
        if promotion is not None and rng.random() < 0.55:
            return promotion
        if position == 0:
            return ("WELCOME10", Decimal("0.10")) if rng.random() < 0.3 else None
        gap = (plan.order_times[position] - plan.order_times[position - 1]).days
        if gap > 120 and rng.random() < 0.35:
            return ("COMEBACK15", Decimal("0.15"))
        if position >= 4 and rng.random() < 0.15:
            return ("VIP15", Decimal("0.15"))
        draw = rng.random()
        if draw < 0.06:
            return ("SAVE10", Decimal("0.10"))
        if draw < 0.10:
            return ("FREESHIP", Decimal(0))
        return None

    def _orders(
        self, rng: random.Random, plan: CustomerPlan, email: str, events: _EventLog
    ) -> list[OrderIn]:
        market = plan.market
        zone = _zone(plan.timezone)
        codes, cumulative = self.category_weights[market.code]
        favourites = (
            codes[bisect.bisect_right(cumulative, rng.random() * cumulative[-1])],
            codes[bisect.bisect_right(cumulative, rng.random() * cumulative[-1])],
        )
        consumables: dict[str, date] = {}
        orders = []
        for position, placed_at in enumerate(plan.order_times):
            day = placed_at.astimezone(zone).date()
            basket = self._basket(rng, market, day, favourites, consumables)
            for line in basket.lines:
                line.quantity *= plan.basket_scale
            for product in basket.products:
                if product.is_consumable:
                    consumables[product.sku] = day
            order = self._order(rng, plan, position, placed_at, basket, email)
            orders.append(order)
            events.purchase_session(rng, order, basket, self)
        return orders

    def _order(
        self,
        rng: random.Random,
        plan: CustomerPlan,
        position: int,
        placed_at: datetime,
        basket: _Basket,
        email: str,
    ) -> OrderIn:
        market, currency = plan.market, plan.market.currency
        zone = _zone(plan.timezone)
        local_day = placed_at.astimezone(zone).date()
        rank = plan.order_numbers[position]
        external_id = str(5_700_000_000_000 + rank * 1_231 + rank * 7_919 % 997)
        subtotal = sum((line.total for line in basket.lines), Decimal(0))
        rate = self.rate(currency, placed_at.date())
        coupon = self._coupon(rng, plan, position, self.day_of(placed_at))
        discount = Decimal(0)
        codes: list[str] = []
        if coupon is not None:
            codes = [coupon[0]]
            discount = quantize(subtotal * coupon[1], currency)
        free_over, shipping_fee, tax_rate, _ = self._money[market.code]
        free_shipping = subtotal * rate >= free_over
        shipping = Decimal(0)
        if not free_shipping and (coupon is None or coupon[0] != "FREESHIP"):
            shipping = self._to_local(shipping_fee, market, local_day)
        if market.tax_included:
            total = subtotal - discount + shipping
            tax = quantize(total * tax_rate / (1 + tax_rate), currency)
        else:
            tax = quantize((subtotal - discount) * tax_rate, currency)
            total = subtotal - discount + shipping + tax
        channel = weighted_choice(ORDER_CHANNELS, rng.random())
        if channel == "app" and self.day_of(placed_at) < APP_LAUNCH_DAY:
            channel = "web"
        payment = weighted_choice(market.payment_methods, rng.random())
        route = weighted_choice(self._routes[market.code], rng.random())
        order = OrderIn(
            source=SOURCE,
            external_id=external_id,
            name=f"#{1001 + rank}",
            currency=currency,
            placed_at=placed_at,
            total=total,
            subtotal=subtotal,
            discount=discount,
            shipping=shipping,
            tax=tax,
            email=email,
            market=market.code,
            channel=channel,
            discount_codes=codes,
            lines=basket.lines,
            attributes={
                "payment_method": payment,
                "route": route.name,
                "warehouse": route.warehouse,
            },
        )
        if market.code in ("AE", "SA", "IN") and rng.random() < 0.05:
            order.tags = ["gift"]
        self._fulfil(rng, order, route, payment, zone, local_day)
        return order

    def _fulfil(
        self,
        rng: random.Random,
        order: OrderIn,
        route: Route,
        payment: str,
        zone: ZoneInfo,
        local_day: date,
    ) -> None:
        """Play the order's timeline forward and keep what happened before the as-of moment."""
        placed = order.placed_at
        paid: datetime | None = placed + timedelta(seconds=rng.randint(5, 180))
        cancelled = None
        refunds: list[RefundIn] = []
        if payment in DELAYED_PAYMENTS:
            if rng.random() < 0.2:
                paid, cancelled = None, placed + timedelta(days=3)
            else:
                paid = placed + timedelta(hours=rng.uniform(1, 60))
        cash_on_delivery = payment == CASH_ON_DELIVERY
        if cash_on_delivery:
            paid = None
        start = paid or placed
        processing = rng.uniform(*route.processing_days)
        shipped: datetime | None = start + timedelta(days=processing)
        if route.cross_border and shipped is not None:
            shipped = self._after_new_year_break(rng, start, shipped)
        transit = rng.triangular(
            route.transit_days[0], route.transit_days[2], route.transit_days[1]
        )
        late_cause = None
        if route.cross_border and rng.random() < 0.05:
            transit += rng.uniform(3, 8)
            late_cause = "customs hold"
        assert shipped is not None
        days = math.ceil((shipped - placed).total_seconds() / 86_400 + transit)
        days = min(max(days, 3), 27)
        delivered: datetime | None = _local_moment(
            rng, local_day + timedelta(days=days), zone, 9, 20
        )
        assert delivered is not None
        if delivered - placed < timedelta(days=days):
            delivered += timedelta(days=1)
        if shipped > delivered - timedelta(days=1):
            shipped = delivered - timedelta(days=rng.uniform(1.0, 2.0))
        order.carrier = weighted_choice(route.carriers, rng.random())
        order.tracking_number = tracking_number(rng, order.carrier)
        order.promised_delivery_date = local_day + timedelta(days=route.promised_days)
        if cancelled is None and paid is not None and rng.random() < 0.012:
            cancelled = paid + timedelta(hours=rng.uniform(0.5, 20))
            refunds.append(
                RefundIn(
                    f"{order.external_id}-R1",
                    order.total,
                    cancelled + timedelta(minutes=rng.randint(2, 90)),
                    "cancelled by customer",
                )
            )
        lost = route.cross_border and rng.random() < 0.005
        if cancelled is not None:
            shipped = delivered = None
        elif cash_on_delivery and rng.random() < 0.08:
            cancelled, delivered = delivered, None
            order.tags = [*order.tags, "cod_refused"]
        elif lost:
            delivered = None
            assert shipped is not None
            refunds.append(
                RefundIn(
                    f"{order.external_id}-R1",
                    order.total,
                    shipped + timedelta(days=rng.uniform(35, 45)),
                    "lost in transit",
                )
            )
        elif cash_on_delivery:
            paid = delivered
        if delivered is not None:
            late = delivered.astimezone(zone).date() > order.promised_delivery_date
            if late and late_cause:
                order.attributes["delay_reason"] = late_cause
            refunds.extend(self._after_sales(rng, order, delivered, late))
            if not refunds:
                refunds.extend(self._warranty_claim(order, delivered))
        timeline = timeline_of(
            order,
            paid=paid,
            shipped=shipped,
            delivered=delivered,
            cancelled=cancelled,
            refunds=refunds,
        )
        self._timelines[order.external_id] = timeline
        cut_at(order, timeline, self.as_of_moment)

    def _warranty_claim(self, order: OrderIn, delivered: datetime) -> list[RefundIn]:
        """An item under warranty that fails months after delivery is refunded, one unit.

        Long after the return window, so its points may already be spent. Drawn from a stream
        of the order's own, so that adding claims left every other draw as it was.
        """
        covered = [
            line
            for line in order.lines
            if line.sku and (PRODUCTS_BY_SKU[line.sku].warranty_days or 0) > 60
        ]
        if not covered:
            return []
        rng = random.Random(f"warranty:{self.seed}:{order.external_id}")
        if rng.random() >= WARRANTY_CLAIM_SHARE:
            return []
        line = rng.choice(covered)
        warranty = PRODUCTS_BY_SKU[line.sku or ""].warranty_days or 0
        goods = order.total - order.shipping
        subtotal = order.subtotal or Decimal(1)
        amount = min(quantize(line.unit_price * goods / subtotal, order.currency), order.total)
        if amount <= 0:
            return []
        claimed = delivered + timedelta(days=rng.uniform(45, warranty))
        return [RefundIn(f"{order.external_id}-W1", amount, claimed, "defective under warranty")]

    def _after_new_year_break(
        self, rng: random.Random, start: datetime, shipped: datetime
    ) -> datetime:
        """Orders paid around the Lunar New Year wait until the warehouse in China reopens."""
        for closes, reopens in self._warehouse_breaks:
            if closes <= shipped and start < reopens:
                return max(shipped, reopens + timedelta(hours=rng.uniform(8, 72)))
        return shipped

    def _after_sales(
        self, rng: random.Random, order: OrderIn, delivered: datetime, late: bool
    ) -> list[RefundIn]:
        """Returns and refunds after delivery: ~5-8 % of delivered orders, some of them partial."""
        chance = 0.045 + (0.06 if late else 0.0)
        if any(line.category == CATEGORIES["TEX"] for line in order.lines):
            chance += 0.025
        if rng.random() >= chance:
            return []
        refund_id = f"{order.external_id}-R{len(order.refunds) + 1}"
        kind = rng.random()
        goods = order.total - order.shipping
        if kind < 0.45:
            reason = "arrived late" if late and rng.random() < 0.5 else rng.choice(RETURN_REASONS)
            returned = delivered + timedelta(days=rng.uniform(5, 20))
            amount = goods if reason in ("wrong size", "changed mind") else order.total
            order.returned_at = returned
            for line in order.lines:
                line.refunded_quantity = line.quantity
            lines = [{"sku": line.sku, "quantity": line.quantity} for line in order.lines]
            return [
                RefundIn(
                    refund_id,
                    amount,
                    returned + timedelta(days=rng.uniform(0.5, 3)),
                    reason,
                    lines,
                    restock=True,
                )
            ]
        if kind < 0.75 and len(order.lines) >= 2:
            line = rng.choice(order.lines)
            subtotal = order.subtotal or Decimal(1)
            amount = min(quantize(line.total * goods / subtotal, order.currency), order.total)
            returned = delivered + timedelta(days=rng.uniform(5, 20))
            order.returned_at = returned
            line.refunded_quantity = line.quantity
            return [
                RefundIn(
                    refund_id,
                    amount,
                    returned + timedelta(days=rng.uniform(0.5, 3)),
                    rng.choice(RETURN_REASONS),
                    [{"sku": line.sku, "quantity": line.quantity}],
                    restock=True,
                )
            ]
        share = Decimal(str(round(rng.uniform(0.1, 0.3), 2)))
        reason = "arrived late" if late else rng.choice(GOODWILL_REASONS)
        amount = quantize(order.total * share, order.currency)
        if amount <= 0:
            return []
        return [RefundIn(refund_id, amount, delivered + timedelta(days=rng.uniform(1, 7)), reason)]

    # --- Behaviour ------------------------------------------------------------------------

    def _browsing(
        self, rng: random.Random, plan: CustomerPlan, orders: list[OrderIn], events: _EventLog
    ) -> None:
        """Sessions without an order: browsing, and carts left behind."""
        if events.anonymous_id is None:
            return
        if plan.is_buyer:
            sessions = _poisson(rng, 0.4 + 0.25 * len(orders))
            active_until = min(plan.order_times[-1] + timedelta(days=90), self.as_of_moment)
        else:
            sessions = 1 + _poisson(rng, 0.8)
            active_until = min(plan.first_seen_at + timedelta(days=120), self.as_of_moment)
        span = (active_until - plan.first_seen_at).total_seconds()
        zone = _zone(plan.timezone)
        for _ in range(sessions):
            moment = plan.first_seen_at + timedelta(seconds=span * rng.random())
            moment = _local_moment(rng, moment.astimezone(zone).date(), zone)
            if not plan.first_seen_at <= moment < self.as_of_moment:
                continue
            abandon = rng.random() < (0.35 if not plan.is_buyer else 0.2)
            events.browse_session(rng, moment, self, abandon)

    def _email_engagement(
        self,
        rng: random.Random,
        plan: CustomerPlan,
        subscribed_until: datetime,
        open_probability: float,
        events: _EventLog,
    ) -> None:
        """Opens and clicks of the market's campaigns while the customer was subscribed."""
        first_day = plan.first_seen_at.date()
        last_day = subscribed_until.date()
        zone = _zone(plan.timezone)
        campaigns = self.campaigns[plan.market.code]
        position = bisect.bisect_left(self.campaign_days[plan.market.code], first_day) - 1
        skip = math.log(1.0 - min(open_probability, 0.999))
        while True:
            # The next opened campaign: a geometric number of unopened ones in between.
            position += 1 + int(math.log(1.0 - rng.random()) / skip)
            if position >= len(campaigns) or campaigns[position].day >= last_day:
                break
            campaign = campaigns[position]
            sent = datetime.combine(campaign.day, clock_time(10), tzinfo=zone).astimezone(UTC)
            opened = sent + timedelta(minutes=min(rng.expovariate(1 / 300), 4_000))
            if opened >= self.as_of_moment:
                continue
            events.email(campaign, opened, "Email Opened")
            if rng.random() < 0.18:
                clicked = opened + timedelta(seconds=rng.randint(5, 600))
                if clicked < self.as_of_moment:
                    events.email(campaign, clicked, "Email Link Clicked")


_CARRIER_FORMATS = {
    "YunExpress": "YT{d16}", "4PX": "4PX{d13}CN", "Cainiao": "LP{d14}", "China Post": "L{S10}CN",
    "DHL eCommerce": "GM{d18}", "USPS": "9400{d18}", "UPS": "1Z{x6}{d10}",
    "Royal Mail": "R{S10}GB", "Evri": "H{d15}", "DHL Paket": "00340{d15}", "Hermes": "H{d15}",
    "DPD": "{d14}", "GLS": "{d11}", "La Poste Colissimo": "6A{d11}", "Correos": "PQ{d14}",
    "Yamato via Cainiao": "{d12}", "Japan Post EMS": "E{S10}JP", "Sagawa via 4PX": "{d12}",
    "CJ Logistics": "{d12}", "Korea Post EMS": "E{S10}KR", "Delhivery": "{d13}",
    "Aramex": "{d11}", "SMSA Express": "{d12}", "Australia Post": "{d12}AU", "Aramex AU": "{d12}",
}  # fmt: skip


def tracking_number(rng: random.Random, carrier: str) -> str:
    """A tracking number in the carrier's usual shape (UPU S10 with its check digit for posts)."""
    pattern = _CARRIER_FORMATS.get(carrier, "{d12}")
    result, position = [], 0
    while position < len(pattern):
        if pattern[position] != "{":
            result.append(pattern[position])
            position += 1
            continue
        end = pattern.index("}", position)
        token = pattern[position + 1 : end]
        position = end + 1
        if token == "S10":
            letter = chr(ord("A") + int(rng.random() * 26))
            digits = [int(digit) for digit in f"{rng.randrange(10**8):08d}"]
            weights = (8, 6, 4, 2, 3, 5, 9, 7)
            check = 11 - sum(d * w for d, w in zip(digits, weights, strict=True)) % 11
            check = 0 if check == 10 else 5 if check == 11 else check
            result.append(letter + "".join(map(str, digits)) + str(check))
        elif token.startswith("d"):
            length = int(token[1:])
            result.append(f"{rng.randrange(10**length):0{length}d}")
        else:
            alphabet = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"
            result.append("".join(rng.choice(alphabet) for _ in range(int(token[1:]))))
    return "".join(result)


class _EventLog:
    """Behavioural events of one customer, as rows for the events table."""

    def __init__(
        self,
        seed: int,
        index: int,
        rng: random.Random,
        timezone: str,
        person: Person,
        market: Market,
        anonymous_id: str | None,
        user_id: str | None,
    ) -> None:
        self.seed, self.index = seed, index
        digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=10).hexdigest()
        self.id_suffix = f"4{digest[:3]}-{digest[3:7]}-{digest[7:19]}"
        self.anonymous_id, self.user_id = anonymous_id, user_id
        self.context = {"timezone": timezone, "locale": f"{person.language}-{market.code}"}
        self.market = market
        self.rows: list[dict[str, Any]] = []
        self.latency = rng.uniform(0.05, 1.5)
        self.identified_from: datetime | None = None

    def _message_id(self) -> str:
        # UUID-shaped and unique by (customer, event number); ids of one customer sort together,
        # which keeps the unique index's inserts local.
        return f"{self.index:08x}-{len(self.rows):04x}-{self.id_suffix}"

    def _add(
        self,
        name: str,
        occurred_at: datetime,
        properties: dict[str, Any],
        source: str = "tracking",
        tracked: bool = True,
    ) -> None:
        user_id = None
        if (
            tracked
            and self.user_id
            and self.identified_from
            and occurred_at >= self.identified_from
        ):
            user_id = self.user_id
        self.rows.append(
            {
                "message_id": self._message_id(),
                "type": "track",
                "name": name,
                "user_id": user_id,
                "anonymous_id": self.anonymous_id if tracked else None,
                "occurred_at": occurred_at,
                "received_at": occurred_at + timedelta(seconds=self.latency),
                "source": source,
                "properties": properties,
                "context": self.context,
            }
        )

    def _view(self, product: ProductSpec, moment: datetime, simulation: DemoSimulation) -> None:
        price = simulation.local_price(product, self.market, moment.date())
        self._add(
            "Product Viewed",
            moment,
            {
                "sku": product.sku,
                "name": product.title,
                "category": product.category,
                "price": str(price),
                "currency": self.market.currency,
            },
        )

    def purchase_session(
        self, rng: random.Random, order: OrderIn, basket: _Basket, simulation: DemoSimulation
    ) -> None:
        """Views, add-to-cart, checkout and the completed order of one purchase."""
        if self.identified_from is None:
            self.identified_from = order.placed_at
        if self.anonymous_id is None:
            return
        if rng.random() < 0.3:
            earlier = order.placed_at - timedelta(hours=rng.uniform(2, 72))
            self._session(rng, earlier, basket.products, simulation, checkout=rng.random() < 0.4)
        moment = order.placed_at - timedelta(minutes=rng.uniform(6, 45))
        extra = _poisson(rng, 0.7)
        viewed = list(basket.products)
        for _ in range(extra):
            viewed.append(rng.choice(PRODUCTS_BY_CATEGORY[basket.products[0].category_code]))
        step = (order.placed_at - moment) / (2 * len(viewed) + 2)
        for product in viewed:
            self._view(product, moment, simulation)
            moment += step
        for line in order.lines:
            self._add(
                "Product Added",
                moment,
                {
                    "sku": line.sku,
                    "quantity": line.quantity,
                    "price": str(line.unit_price),
                    "currency": order.currency,
                },
            )
            moment += step
        self._add(
            "Checkout Started", moment, {"value": str(order.total), "currency": order.currency}
        )
        self._add(
            "Order Completed",
            order.placed_at,
            {
                "order_id": order.external_id,
                "total": str(order.total),
                "currency": order.currency,
                "coupon": order.discount_codes[0] if order.discount_codes else None,
                "products": [
                    {"sku": line.sku, "quantity": line.quantity, "price": str(line.unit_price)}
                    for line in order.lines
                ],
            },
        )

    def _session(
        self,
        rng: random.Random,
        moment: datetime,
        products: list[ProductSpec],
        simulation: DemoSimulation,
        *,
        checkout: bool,
    ) -> None:
        """A session that ends with a cart left behind."""
        for product in products:
            self._view(product, moment, simulation)
            moment += timedelta(seconds=rng.randint(20, 240))
        added = products[: max(1, len(products) // 2 + 1)]
        for product in added:
            price = simulation.local_price(product, self.market, moment.date())
            self._add(
                "Product Added",
                moment,
                {
                    "sku": product.sku,
                    "quantity": 1,
                    "price": str(price),
                    "currency": self.market.currency,
                },
            )
            moment += timedelta(seconds=rng.randint(10, 120))
        if checkout:
            self._add("Checkout Started", moment, {"currency": self.market.currency})

    def browse_session(
        self, rng: random.Random, moment: datetime, simulation: DemoSimulation, abandon: bool
    ) -> None:
        """A visit: a few product views, sometimes a cart left behind."""
        codes, cumulative = simulation.category_weights[self.market.code]
        category = codes[bisect.bisect_right(cumulative, rng.random() * cumulative[-1])]
        products = [rng.choice(PRODUCTS_BY_CATEGORY[category]) for _ in range(rng.randint(1, 3))]
        if abandon:
            self._session(rng, moment, products, simulation, checkout=rng.random() < 0.35)
            return
        for product in products:
            self._view(product, moment, simulation)
            moment += timedelta(seconds=rng.randint(15, 300))

    def email(self, campaign: Campaign, moment: datetime, name: str) -> None:
        """An email opened or clicked, as the email service reports it."""
        self._add(
            name,
            moment,
            {"campaign_id": campaign.campaign_id, "campaign_name": campaign.name},
            source="email",
            tracked=False,
        )


def simulate(
    *, seed: int, customers: int, as_of: date, batch_size: int = BATCH_SIZE
) -> Iterator[DemoBatch]:
    """The demo store as batches of customers, orders and events: a pure function of its inputs."""
    return DemoSimulation(seed=seed, customers=customers, as_of=as_of).batches(batch_size)


# --- Building the store ---------------------------------------------------------------------


@dataclass
class MarketSummary:
    """What one market holds in the built store."""

    code: str
    name: str
    currency: str
    language: str
    timezone: str
    customers: int
    orders: int
    revenue_base: Decimal  # orders not cancelled, in the base currency
    refunded_base: Decimal


@dataclass
class DemoSummary:
    """The demo store that was built: its keys, its size and its markets."""

    store_id: int
    name: str
    base_currency: str
    timezone: str
    seed: int
    as_of: date
    secret_key: str
    publishable_key: str
    webhook_secret: str
    counts: dict[str, int]
    revenue_base: Decimal
    refunded_base: Decimal
    markets: list[MarketSummary]
    example_customer_id: int | None
    example_customer_email: str | None
    build_seconds: float
    membership: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready data."""
        return {
            "store_id": self.store_id,
            "name": self.name,
            "base_currency": self.base_currency,
            "timezone": self.timezone,
            "seed": self.seed,
            "as_of": self.as_of.isoformat(),
            "keys": {
                "secret_key": self.secret_key,
                "publishable_key": self.publishable_key,
                "webhook_secret": self.webhook_secret,
            },
            "counts": dict(self.counts),
            "revenue_base": str(self.revenue_base),
            "refunded_base": str(self.refunded_base),
            "markets": [
                {
                    "code": market.code,
                    "name": market.name,
                    "currency": market.currency,
                    "language": market.language,
                    "timezone": market.timezone,
                    "customers": market.customers,
                    "orders": market.orders,
                    "revenue_base": str(market.revenue_base),
                    "refunded_base": str(market.refunded_base),
                }
                for market in self.markets
            ],
            "example_customer": {
                "id": self.example_customer_id,
                "email": self.example_customer_email,
            },
            "build_seconds": round(self.build_seconds, 2),
            "membership": self.membership,
        }


Progress = Callable[[int, int], None]


def build_demo_store(
    engine: Engine,
    *,
    customers: int = DEFAULT_CUSTOMERS,
    seed: int = DEFAULT_SEED,
    as_of: date = DEFAULT_AS_OF,
    batch_size: int = BATCH_SIZE,
    on_progress: Progress | None = None,
) -> DemoSummary:
    """Build a new demo store into `engine`'s (migrated) database and summarise it.

    Each batch of customers with their events is committed on its own; then the orders are
    replayed month by month under the default membership program (`demo.replay`), one committed
    step at a time. The process clock stands inside the history throughout (at the as-of moment,
    then at each step), so that no row carries the wall-clock time.
    """
    started = time.monotonic()
    simulation = DemoSimulation(seed=seed, customers=customers, as_of=as_of)
    previous_clock = get_clock()
    set_clock(FrozenClock(simulation.as_of_moment))
    previous_thresholds = gc.get_threshold()
    # Millions of short-lived objects and no cycles: collect far less often while building.
    gc.set_threshold(100_000, 50, 100)
    try:
        with session_scope(engine) as session:
            created = create_store(
                session,
                name=STORE_NAME,
                base_currency=BASE_CURRENCY,
                timezone=STORE_TIMEZONE,
                default_language=STORE_LANGUAGE,
                markets=[market.code for market in MARKETS],
            )
            store = created.store
            store.settings = {
                "demo": {"seed": seed, "customers": customers, "as_of": as_of.isoformat()}
            }
            session.flush()
            opened = datetime.combine(simulation.start, clock_time(0), tzinfo=UTC)
            order_repository.insert_products(session, product_rows(store.id, opened))
            # The seed's default membership program, so orders earn points as they are written.
            set_program(session, store.id, default_program(), source="demo")
            session.execute(insert(table_of(ExchangeRate)), simulation.exchange_rate_rows(store.id))
        with session_scope(engine) as session:
            book = load_rate_book(session, store.id, store.base_currency)
        done = 0
        if on_progress is not None:
            on_progress(0, customers)
        members: list[Member] = []
        orders: list[ReplayOrder] = []
        with seeded_codes(f"demo:{seed}"):
            for batch in simulation.batches(batch_size):
                with session_scope(engine) as session:
                    customer_ids = _write_batch(session, store, batch)
                offset = len(members)
                members.extend(_members(batch, customer_ids))
                orders.extend(
                    ReplayOrder(order, timeline, offset + position)
                    for order, timeline, position in zip(
                        batch.orders, batch.timelines, batch.order_customers, strict=True
                    )
                )
                done += len(batch.customers)
                if on_progress is not None:
                    on_progress(done, customers)
            HistoryReplay(
                engine,
                store=store,
                seed=seed,
                rate_book=book,
                members=members,
                orders=orders,
                steps=month_steps(simulation.start, simulation.as_of_moment),
            ).run()
        with session_scope(engine) as session:
            _date_rows_by_the_story(session, store.id)
            summary = summarise(session, store.id)
    finally:
        set_clock(previous_clock)
        gc.set_threshold(*previous_thresholds)
    summary.secret_key = created.secret_key
    summary.publishable_key = created.publishable_key
    summary.webhook_secret = created.webhook_secret
    summary.build_seconds = time.monotonic() - started
    return summary


def _write_batch(session: Session, store: Store, batch: DemoBatch) -> list[int]:
    """One batch's customers and events through the bulk paths; return the customers' ids.

    Orders come later, replayed month by month (`HistoryReplay`).
    """
    if session.get_bind().dialect.name == "sqlite":
        # A 128 MB page cache for this connection: the indexes of a large store stay in memory.
        session.execute(text("PRAGMA cache_size = -131072"))
    resolved = resolve_customers(session, store.id, batch.customers)
    customer_ids = [result.customer_id for result in resolved]
    if len(set(customer_ids)) != len(customer_ids):
        raise AssertionError("demo customers must never share an identity")
    rows = batch.events
    for row, position in zip(rows, batch.event_customers, strict=True):
        row["store_id"] = store.id
        row["customer_id"] = customer_ids[position]
    insert_events(session, rows)
    return customer_ids


def _members(batch: DemoBatch, customer_ids: list[int]) -> list[Member]:
    """What the replay needs of each customer of a batch."""
    members = []
    for customer, customer_id in zip(batch.customers, customer_ids, strict=True):
        devices = [value for kind, value in customer.identities if kind == "anonymous_id"]
        members.append(
            Member(
                customer_id=customer_id,
                birthday=customer.birthday,
                referred=(customer.attributes or {}).get("acquisition_channel") == "referral",
                device=devices[0] if devices else None,
            )
        )
    return members


_EVENT_COLUMNS = ("store_id", "message_id", "type", "name", "customer_id", "user_id",
                  "anonymous_id", "occurred_at", "received_at", "source", "properties",
                  "context")  # fmt: skip


def insert_events(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert event rows in bulk (on SQLite straight through the driver: see below).

    The demo writes hundreds of thousands of events and most of the cost of a Core insert is in
    the column types' conversions. SQLite keeps JSON as text and timestamps as naive UTC text in
    SQLAlchemy's format ("2026-11-01 00:00:00.000000"), so on SQLite the rows are converted once
    here and handed to the driver; other databases take the ordinary Core insert.
    """
    if not rows:
        return
    if session.get_bind().dialect.name != "sqlite":
        for start in range(0, len(rows), 5_000):
            session.execute(insert(table_of(Event)), rows[start : start + 5_000])
        return
    contexts: dict[int, str] = {}

    def text(moment: datetime) -> str:
        return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

    parameters = []
    for row in rows:
        context = row["context"]
        context_text = contexts.get(id(context))
        if context_text is None:
            context_text = contexts[id(context)] = orjson.dumps(context).decode()
        parameters.append((
            row["store_id"], row["message_id"], row["type"], row["name"], row["customer_id"],
            row["user_id"], row["anonymous_id"], text(row["occurred_at"]),
            text(row["received_at"]), row["source"], orjson.dumps(row["properties"]).decode(),
            context_text,
        ))  # fmt: skip
    columns = ", ".join(_EVENT_COLUMNS)
    placeholders = ", ".join("?" for _ in _EVENT_COLUMNS)
    session.connection().exec_driver_sql(
        f"INSERT INTO events ({columns}) VALUES ({placeholders})", parameters
    )


def _date_rows_by_the_story(session: Session, store_id: int) -> None:
    """Customers were created when first seen and orders when placed, not when the demo ran."""
    customers = table_of(Customer)
    session.execute(
        update(customers)
        .where(customers.c.store_id == store_id, customers.c.first_seen_at.is_not(None))
        .values(created_at=customers.c.first_seen_at)
    )
    orders = table_of(Order)
    session.execute(
        update(orders).where(orders.c.store_id == store_id).values(created_at=orders.c.placed_at)
    )


def summarise(session: Session, store_id: int) -> DemoSummary:
    """Count what a demo store holds; keys are left blank (they are shown only once)."""
    store = session.get(Store, store_id)
    if store is None:
        raise ValidationFailedError(f"store {store_id} does not exist")
    counts = {}
    for name, model in (
        ("customers", Customer),
        ("orders", Order),
        ("order_lines", OrderLine),
        ("refunds", Refund),
        ("events", Event),
        ("products", Product),
        ("exchange_rates", ExchangeRate),
    ):
        table = table_of(model)
        counts[name] = (
            session.scalar(
                select(func.count()).select_from(table).where(table.c.store_id == store_id)
            )
            or 0
        )
    customers = table_of(Customer)
    per_country: dict[str | None, int] = dict(
        session.execute(
            select(customers.c.country, func.count())
            .where(customers.c.store_id == store_id, customers.c.merged_into_id.is_(None))
            .group_by(customers.c.country)
        ).all()
    )
    orders = table_of(Order)
    per_market: dict[str, list[Any]] = {}
    rows = session.execute(
        select(
            orders.c.market,
            orders.c.status,
            func.count(),
            func.sum(orders.c.total_base),
            func.sum(orders.c.refunded_base),
        )
        .where(orders.c.store_id == store_id)
        .group_by(orders.c.market, orders.c.status)
    )
    for market, status, count, revenue, refunded in rows:
        totals = per_market.setdefault(market, [0, Decimal(0), Decimal(0)])
        totals[0] += count
        if status != "cancelled":
            totals[1] += Decimal(revenue or 0)
            totals[2] += Decimal(refunded or 0)
    markets = []
    for market in MARKETS:
        order_count, revenue, refunded = per_market.get(market.code, [0, Decimal(0), Decimal(0)])
        markets.append(
            MarketSummary(
                market.code,
                market.name,
                market.currency,
                market.languages[0][0],
                market.timezones[0][0],
                per_country.get(market.code, 0),
                order_count,
                quantize(revenue, BASE_CURRENCY),
                quantize(refunded, BASE_CURRENCY),
            )
        )
    example = session.execute(
        select(orders.c.customer_id, func.count().label("orders"))
        .where(orders.c.store_id == store_id, orders.c.customer_id.is_not(None))
        .group_by(orders.c.customer_id)
        .order_by(func.count().desc(), orders.c.customer_id)
        .limit(1)
    ).first()
    example_id = example[0] if example else None
    example_email = None
    if example_id is not None:
        example_email = session.scalar(
            select(customers.c.email).where(customers.c.id == example_id)
        )
    settings = (store.settings or {}).get("demo", {})
    return DemoSummary(
        store_id=store.id,
        name=store.name,
        base_currency=store.base_currency,
        timezone=store.timezone,
        seed=int(settings.get("seed", -1)),
        as_of=date.fromisoformat(settings.get("as_of", DEFAULT_AS_OF.isoformat())),
        secret_key="",
        publishable_key="",
        webhook_secret="",
        counts=counts,
        revenue_base=sum((market.revenue_base for market in markets), Decimal(0)),
        refunded_base=sum((market.refunded_base for market in markets), Decimal(0)),
        markets=markets,
        example_customer_id=example_id,
        example_customer_email=example_email,
        build_seconds=0.0,
        membership=membership_summary(session, store_id, as_of=store_as_of(store)),
    )


def store_as_of(store: Store) -> datetime:
    """The moment a demo store's history ends."""
    settings = (store.settings or {}).get("demo", {})
    day = date.fromisoformat(settings.get("as_of", DEFAULT_AS_OF.isoformat()))
    return datetime.combine(day, clock_time(0), tzinfo=UTC)


def demo_store_ids(engine: Engine) -> list[int]:
    """The ids of the stores `patronage demo` built in this database."""
    with session_scope(engine) as session:
        stores = session.scalars(select(Store).order_by(Store.id))
        return [store.id for store in stores if "demo" in (store.settings or {})]


def remove_demo_stores(engine: Engine) -> list[int]:
    """Delete every store `patronage demo` built (all their rows go with them); return their ids."""
    removed = []
    for store_id in demo_store_ids(engine):
        with session_scope(engine) as session:
            store = session.get(Store, store_id)
            if store is not None:
                session.delete(store)
                removed.append(store_id)
    return removed
