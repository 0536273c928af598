"""The membership program: a versioned, validated configuration per store, in and out as YAML.

The default program is the seed's: $1 of merchandise (net of discounts, in the base currency) earns
10 points; bronze / silver / gold / diamond by rolling 12-month spend, orders and repurchase rate
(diamond: $5,000+ a year and a 40 % repurchase rate), evaluated quarterly; member day x3; three
orders in a month +300; reviews 50-200; referral 500; points lapse 12 months after they activate
with reminders 30, 7 and 1 days before; 500 points buy a $5 coupon, 1,500 merchandise and 5,000 a
year of free shipping; points + cash pay at most 30 % of an order; heritage members after 5 years.
"""

from __future__ import annotations

import calendar
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

import patronage.loyalty.repository as repository
from patronage.errors import ValidationFailedError
from patronage.kit.clock import utcnow
from patronage.loyalty.errors import ProgramNotConfiguredError
from patronage.loyalty.models import LoyaltyProgram

ZERO = Decimal(0)
ONE = Decimal(1)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Thresholds(_Model):
    """What a member needs over the rolling window (all must hold)."""

    min_spend: Decimal = Field(ZERO, ge=0)
    min_orders: int = Field(0, ge=0)
    min_repurchase_rate: Decimal = Field(ZERO, ge=0, le=1)


class Benefits(_Model):
    """What a tier gives."""

    discount_percent: Decimal = Field(ZERO, ge=0, le=100)
    free_shipping: bool = False
    priority_shipping: bool = False
    support_priority: Literal["standard", "priority", "dedicated"] = "standard"
    points_multiplier: Decimal = Field(ONE, ge=0)
    birthday_multiplier: Decimal = Field(ONE, ge=0)
    early_access: bool = False
    personal_shopper: bool = False


class Tier(_Model):
    """A tier: thresholds to enter it, lower ones to keep it, and its benefits."""

    name: str = Field(min_length=1, max_length=32)
    entry: Thresholds = Field(default_factory=Thresholds)
    retention: Thresholds | None = None
    benefits: Benefits = Field(default_factory=Benefits)

    def keeps(self) -> Thresholds:
        """The thresholds to stay in the tier (the entry ones when none are set)."""
        return self.retention or self.entry


class EarningBase(_Model):
    """Which parts of an order earn points."""

    net_of_discounts: bool = True
    include_shipping: bool = False
    include_tax: bool = False


class Earning(_Model):
    """Points per unit of base currency on the earning base."""

    points_per_unit: Decimal = Field(Decimal(10), ge=0)
    base: EarningBase = Field(default_factory=EarningBase)


class Multiplier(_Model):
    """A promotion that multiplies order points on some days (in the store's time zone)."""

    name: str
    factor: Decimal = Field(gt=0)
    days_of_month: list[int] = Field(default_factory=list)
    weekdays: list[int] = Field(default_factory=list)  # 0 = Monday
    starts_on: date | None = None
    ends_on: date | None = None

    def applies_on(self, day: date) -> bool:
        """Whether the multiplier is on for an order placed on `day` (local date)."""
        if self.starts_on and day < self.starts_on:
            return False
        if self.ends_on and day > self.ends_on:
            return False
        if self.days_of_month and day.day not in self.days_of_month:
            return False
        return not (self.weekdays and day.weekday() not in self.weekdays)


class Action(_Model):
    """A bonus for something a member did: sign-up, a review (by type), a birthday …"""

    points: int = Field(0, ge=0)
    variants: dict[str, int] = Field(default_factory=dict)
    once_per: Literal["ever", "year", "month", "day"] | None = None

    def points_for(self, variant: str | None) -> int:
        """Points for this action and variant."""
        if variant is None:
            return self.points
        if variant not in self.variants:
            raise ValidationFailedError(
                f"unknown variant {variant!r}; known: {', '.join(sorted(self.variants))}"
            )
        return self.variants[variant]


class Task(_Model):
    """Place `orders` paid orders in one calendar month, earn `points` once that month."""

    name: str
    orders: int = Field(ge=1)
    points: int = Field(ge=0)


class Caps(_Model):
    """Limits on bonus points a member can earn per day and per calendar month."""

    daily: int | None = Field(None, ge=0)
    monthly: int | None = Field(None, ge=0)


class Expiry(_Model):
    """When credited points lapse: months after activation, or the end of that year."""

    mode: Literal["rolling", "end_of_year", "never"] = "rolling"
    months: int = Field(12, ge=1, le=120)
    reminder_days: list[int] = Field(default_factory=lambda: [30, 7, 1])

    def expires_at(self, activated_at: datetime) -> datetime | None:
        """When points activated at `activated_at` lapse."""
        if self.mode == "never":
            return None
        lapse = add_months(activated_at, self.months)
        if self.mode == "end_of_year":
            return datetime(lapse.year + 1, 1, 1, tzinfo=UTC) - timedelta(microseconds=1)
        return lapse


class Reward(_Model):
    """A catalog reward bought with points."""

    code: str = Field(min_length=1, max_length=64)
    name: str
    kind: Literal["coupon", "merchandise", "free_shipping"]
    cost_points: int = Field(gt=0)
    value: Decimal | None = Field(None, ge=0)  # coupon value in the base currency
    valid_days: int = Field(90, ge=1)


class PointsForCash(_Model):
    """Points as part payment: how many points make one unit of base currency, and the cap."""

    enabled: bool = True
    points_per_unit: int = Field(100, gt=0)
    max_share: Decimal = Field(Decimal("0.30"), gt=0, le=1)
    min_points: int = Field(100, ge=1)
    valid_days: int = Field(1, ge=1)


class Returns(_Model):
    """The return window that keeps order points pending, and what a refund of spent points does.

    `negative_balance` lets the balance go below zero, recovered from future earnings; `flag`
    takes what is there and records the shortfall for review. Neither is silent.
    """

    window_days: int = Field(30, ge=0)
    undelivered_activation_days: int | None = Field(90, ge=0)
    spent_points_policy: Literal["negative_balance", "flag"] = "negative_balance"


class Referrals(_Model):
    """Referral rewards and the fraud limits."""

    referrer_points: int = Field(500, ge=0)
    referred_points: int = Field(0, ge=0)
    max_per_source_per_week: int = Field(3, ge=1)


class Evaluation(_Model):
    """How tiers are evaluated: the rolling window, the cadence of reviews, the grace period."""

    window_months: int = Field(12, ge=1)
    cadence: Literal["monthly", "quarterly", "yearly"] = "quarterly"
    grace_days: int = Field(60, ge=0)


class Program(_Model):
    """A store's membership program."""

    name: str = "Membership"
    earning: Earning = Field(default_factory=Earning)
    multipliers: list[Multiplier] = Field(default_factory=list)
    stacking: Literal["multiply", "add", "highest"] = "multiply"
    max_multiplier: Decimal = Field(Decimal(5), ge=1)
    tiers: list[Tier]
    evaluation: Evaluation = Field(default_factory=Evaluation)
    actions: dict[str, Action] = Field(default_factory=dict)
    tasks: list[Task] = Field(default_factory=list)
    caps: Caps = Field(default_factory=Caps)
    expiry: Expiry = Field(default_factory=Expiry)
    rewards: list[Reward] = Field(default_factory=list)
    points_for_cash: PointsForCash = Field(default_factory=PointsForCash)
    returns: Returns = Field(default_factory=Returns)
    referrals: Referrals = Field(default_factory=Referrals)
    heritage_years: int = Field(5, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> Program:
        if not self.tiers:
            raise ValueError("a program needs at least one tier")
        names = [tier.name for tier in self.tiers]
        if len(set(names)) != len(names):
            raise ValueError("tier names must be unique")
        first = self.tiers[0].entry
        if first.min_spend or first.min_orders or first.min_repurchase_rate:
            raise ValueError("the first tier is where every member starts: no entry thresholds")
        codes = [reward.code for reward in self.rewards]
        if len(set(codes)) != len(codes):
            raise ValueError("reward codes must be unique")
        for reward in self.rewards:
            if reward.kind == "coupon" and reward.value is None:
                raise ValueError(f"coupon reward {reward.code!r} needs a value")
        return self

    def tier_named(self, name: str) -> Tier:
        """The tier called `name` (the first tier if it no longer exists)."""
        for tier in self.tiers:
            if tier.name == name:
                return tier
        return self.tiers[0]

    def tier_rank(self, name: str) -> int:
        """The position of a tier, lowest first (0 for unknown names)."""
        for index, tier in enumerate(self.tiers):
            if tier.name == name:
                return index
        return 0

    def reward(self, code: str) -> Reward:
        """The catalog reward with this code."""
        for reward in self.rewards:
            if reward.code == code:
                return reward
        known = ", ".join(reward.code for reward in self.rewards) or "none"
        raise ValidationFailedError(f"no reward {code!r} in the catalog (known: {known})")


def add_months(moment: datetime, months: int) -> datetime:
    """`moment` plus whole calendar months, clamping the day (Jan 31 + 1 month = Feb 28/29)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def default_program() -> Program:
    """The seed's program (seed 003 §7)."""
    return Program(
        name="Membership",
        multipliers=[Multiplier(name="member day", factor=Decimal(3), days_of_month=[18])],
        tiers=[
            Tier(
                name="bronze",
                benefits=Benefits(discount_percent=Decimal(0)),
            ),
            Tier(
                name="silver",
                entry=Thresholds(min_spend=Decimal(500), min_orders=2),
                retention=Thresholds(min_spend=Decimal(400), min_orders=1),
                benefits=Benefits(discount_percent=Decimal(5), points_multiplier=Decimal("1.25")),
            ),
            Tier(
                name="gold",
                entry=Thresholds(min_spend=Decimal(2000), min_orders=3),
                retention=Thresholds(min_spend=Decimal(1600), min_orders=2),
                benefits=Benefits(
                    discount_percent=Decimal(10),
                    priority_shipping=True,
                    support_priority="priority",
                    points_multiplier=Decimal("1.5"),
                    birthday_multiplier=Decimal(2),
                ),
            ),
            Tier(
                name="diamond",
                entry=Thresholds(
                    min_spend=Decimal(5000), min_orders=3, min_repurchase_rate=Decimal("0.40")
                ),
                retention=Thresholds(
                    min_spend=Decimal(4000), min_orders=2, min_repurchase_rate=Decimal("0.30")
                ),
                benefits=Benefits(
                    discount_percent=Decimal(15),
                    free_shipping=True,
                    priority_shipping=True,
                    support_priority="dedicated",
                    points_multiplier=Decimal(2),
                    birthday_multiplier=Decimal(2),
                    early_access=True,
                    personal_shopper=True,
                ),
            ),
        ],
        actions={
            "signup": Action(points=100, once_per="ever"),
            "review": Action(
                points=50, variants={"text": 50, "photo": 100, "video": 200}, once_per=None
            ),
            "birthday": Action(points=200, once_per="year"),
            "survey": Action(points=50, once_per="month"),
        },
        tasks=[Task(name="three orders in a month", orders=3, points=300)],
        caps=Caps(daily=1000, monthly=3000),
        rewards=[
            Reward(
                code="coupon-5",
                name="$5 coupon",
                kind="coupon",
                cost_points=500,
                value=Decimal(5),
            ),
            Reward(
                code="merchandise",
                name="Limited merchandise",
                kind="merchandise",
                cost_points=1500,
            ),
            Reward(
                code="free-shipping-year",
                name="A year of free shipping",
                kind="free_shipping",
                cost_points=5000,
                valid_days=365,
            ),
        ],
    )


# ---- YAML in and out ---------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    pass


def _represent_decimal(dumper: yaml.SafeDumper, value: Decimal) -> yaml.Node:
    text = format(value, "f")
    if value == value.to_integral_value():
        return dumper.represent_scalar("tag:yaml.org,2002:int", str(int(value)))
    return dumper.represent_scalar("tag:yaml.org,2002:float", text)


_Dumper.add_representer(Decimal, _represent_decimal)


def program_to_yaml(program: Program) -> str:
    """Render the program as YAML (exact decimals, keys in their natural order)."""
    return yaml.dump(
        program.model_dump(mode="python"),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
    )


class _Loader(yaml.SafeLoader):
    pass


def _construct_float_as_decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal:
    return Decimal(str(loader.construct_scalar(node)).replace("_", ""))


_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float_as_decimal)


def program_from_yaml(text: str) -> Program:
    """Parse and validate a program from YAML; errors name the field."""
    try:
        document = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as error:
        raise ValidationFailedError(f"the program is not valid YAML: {error}") from error
    if not isinstance(document, dict):
        raise ValidationFailedError("the program must be a YAML mapping")
    return program_from_document(document)


def program_from_document(document: dict[str, Any]) -> Program:
    """Validate a program from its stored or submitted mapping."""
    try:
        return Program.model_validate(document)
    except ValidationError as error:
        problems = [
            f"{'.'.join(str(part) for part in item['loc']) or 'program'}: {item['msg']}"
            for item in error.errors()
        ]
        raise ValidationFailedError(
            "the program is not valid: " + "; ".join(problems), errors=problems
        ) from error


def program_from_json(text: str | bytes) -> Program:
    """Parse and validate a program from JSON; errors name the field."""
    try:
        document = json.loads(text, parse_float=Decimal)
    except ValueError as error:
        raise ValidationFailedError(f"the program is not valid JSON: {error}") from error
    if not isinstance(document, dict):
        raise ValidationFailedError("the program must be a JSON object")
    return program_from_document(document)


# ---- versions per store ------------------------------------------------------------------------


def current_program(session: Session, store_id: int) -> tuple[int, Program] | None:
    """The version in force and its program, or None when the store has no program."""
    found = repository.latest_program(session, store_id)
    if found is None:
        return None
    version, document = found
    return version, program_from_document(document)


def require_program(session: Session, store_id: int) -> tuple[int, Program]:
    """The program in force, or ProgramNotConfiguredError."""
    found = current_program(session, store_id)
    if found is None:
        raise ProgramNotConfiguredError(
            f"store {store_id} has no membership program; set one with "
            f"`patronage loyalty program set --store {store_id}`"
        )
    return found


def set_program(session: Session, store_id: int, program: Program, *, source: str) -> int:
    """Record `program` as the store's next version and return the version number."""
    from patronage.db.conflicts import retry_on_conflict

    document = program.model_dump(mode="json")

    def add_version() -> int:
        version = repository.latest_program_version(session, store_id) + 1
        repository.insert_program(
            session,
            store_id=store_id,
            version=version,
            document=document,
            source=source,
            created_at=utcnow(),
        )
        return version

    return retry_on_conflict(session, add_version)


@dataclass(frozen=True)
class ProgramVersion:
    """One stored version of a store's program."""

    version: int
    source: str
    created_at: datetime
    document: dict[str, Any]


def program_versions(session: Session, store_id: int) -> list[ProgramVersion]:
    """Every version of the store's program, newest first (documents left empty)."""
    rows = session.execute(
        select(LoyaltyProgram.version, LoyaltyProgram.source, LoyaltyProgram.created_at)
        .where(LoyaltyProgram.store_id == store_id)
        .order_by(LoyaltyProgram.version.desc())
    )
    return [ProgramVersion(version, source, created, {}) for version, source, created in rows]


def program_version(
    session: Session, store_id: int, version: int | None = None
) -> ProgramVersion | None:
    """One version of the store's program (the one in force when `version` is None)."""
    query = select(LoyaltyProgram).where(LoyaltyProgram.store_id == store_id)
    if version is None:
        query = query.order_by(LoyaltyProgram.version.desc()).limit(1)
    else:
        query = query.where(LoyaltyProgram.version == version)
    row = session.scalars(query).first()
    if row is None:
        return None
    return ProgramVersion(row.version, row.source, row.created_at, dict(row.document))


# ---- earning -----------------------------------------------------------------------------------


def local_date(moment: datetime, timezone: str) -> date:
    """The calendar date of `moment` in a time zone."""
    return moment.astimezone(ZoneInfo(timezone)).date()


def stacked_multiplier(program: Program, factors: list[Decimal]) -> Decimal:
    """Combine multipliers by the program's stacking rule, capped at `max_multiplier`."""
    relevant = [factor for factor in factors if factor != ONE] or [ONE]
    if program.stacking == "multiply":
        combined = ONE
        for factor in relevant:
            combined *= factor
    elif program.stacking == "add":
        combined = ONE + sum((factor - ONE for factor in relevant), ZERO)
    else:
        combined = max(relevant)
    return min(combined, program.max_multiplier)


def earning_base(
    program: Program,
    *,
    subtotal: Decimal,
    discount: Decimal,
    shipping: Decimal,
    tax: Decimal,
    fx_rate: Decimal,
) -> Decimal:
    """The order's earning base in the store's base currency (order amounts x the order's rate).

    `subtotal` is the merchandise before the order-level discount, as orders store it.
    """
    base = subtotal
    if program.earning.base.net_of_discounts:
        base -= discount
    if program.earning.base.include_shipping:
        base += shipping
    if program.earning.base.include_tax:
        base += tax
    return max(base, ZERO) * fx_rate


def order_multipliers(
    program: Program,
    *,
    tier: str,
    placed_on: date,
    birthday: date | None,
) -> list[Decimal]:
    """Every multiplier that applies to an order placed on a local date by a member of `tier`."""
    benefits = program.tier_named(tier).benefits
    factors = [benefits.points_multiplier]
    factors += [m.factor for m in program.multipliers if m.applies_on(placed_on)]
    if birthday is not None and birthday.month == placed_on.month:
        factors.append(benefits.birthday_multiplier)
    return factors


def points_for(program: Program, base_amount: Decimal, multiplier: Decimal) -> int:
    """Whole points for an amount of base currency at a multiplier (rounded down)."""
    raw = base_amount * program.earning.points_per_unit * multiplier
    return int(raw.to_integral_value(rounding=ROUND_FLOOR))
