"""What every source tells us about a customer, in one canonical shape."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class ConsentIn:
    """A consent statement for one channel."""

    status: str  # subscribed | unsubscribed | pending | not_subscribed
    source: str
    recorded_at: datetime


@dataclass(slots=True)
class CustomerIn:
    """A customer as a source describes them; blank fields leave what we know untouched."""

    source: str
    email: str | None = None
    phone: str | None = None  # E.164 already
    first_name: str | None = None
    last_name: str | None = None
    country: str | None = None
    language: str | None = None
    timezone: str | None = None
    currency: str | None = None
    birthday: date | None = None
    tags: list[str] | None = None
    attributes: dict[str, Any] | None = None
    identities: list[tuple[str, str]] = field(default_factory=list)  # (kind, value)
    consents: dict[str, ConsentIn] = field(default_factory=dict)  # channel -> consent
    seen_at: datetime | None = None

    def identity_keys(self) -> list[tuple[str, str]]:
        """Every (kind, value) by which this customer can be recognised, strongest first."""
        keys = list(self.identities)
        if self.email:
            keys.append(("email", self.email))
        if self.phone:
            keys.append(("phone", self.phone))
        return keys


@dataclass(frozen=True, slots=True)
class ResolvedCustomer:
    """The outcome of resolving one CustomerIn."""

    customer_id: int
    created: bool
    updated: bool


PROFILE_FIELDS = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "country",
    "language",
    "timezone",
    "currency",
    "birthday",
)


def normalise_email(raw: str | None) -> str | None:
    """Lower-case and trim an email; blank gives None; raise ValueError if it has no @."""
    if raw is None:
        return None
    cleaned = raw.strip().lower()
    if not cleaned:
        return None
    local, _, domain = cleaned.partition("@")
    if not local or "." not in domain or " " in cleaned:
        raise ValueError(f"not an email address: {raw!r}")
    return cleaned


# --- The customer 360 view (API and CLI output) ---------------------------------------------

from pydantic import BaseModel  # noqa: E402


class IdentityOut(BaseModel):
    """One identity of the customer."""

    kind: str
    value: str
    source: str
    created_at: datetime


class ConsentOut(BaseModel):
    """Current consent for one channel."""

    channel: str
    status: str
    source: str
    recorded_at: datetime


class TimelineStepOut(BaseModel):
    """One step of an order's timeline."""

    status: str
    occurred_at: datetime
    details: dict[str, Any]


class OrderLineOut(BaseModel):
    """One line of an order."""

    sku: str | None
    title: str
    category: str | None
    quantity: int
    unit_price: str
    total: str
    refunded_quantity: int


class RefundOut(BaseModel):
    """A refund on an order."""

    external_id: str
    amount: str
    amount_base: str
    refunded_at: datetime
    reason: str | None


class OrderOut(BaseModel):
    """An order with its lines and timeline; money as decimal strings."""

    id: int
    source: str
    external_id: str
    name: str | None
    status: str
    market: str | None
    currency: str
    total: str
    total_base: str
    refunded: str
    refunded_base: str
    fx_rate: str
    placed_at: datetime
    paid_at: datetime | None
    shipped_at: datetime | None
    delivered_at: datetime | None
    cancelled_at: datetime | None
    carrier: str | None
    tracking_number: str | None
    promised_delivery_date: date | None
    lines: list[OrderLineOut]
    timeline: list[TimelineStepOut]
    refunds: list[RefundOut]


class EventOut(BaseModel):
    """A recent behavioural event."""

    message_id: str
    type: str
    name: str | None
    occurred_at: datetime
    properties: dict[str, Any]


class MergeOut(BaseModel):
    """A customer folded into this one."""

    merged_id: int
    reason: str
    merged_at: datetime


class CustomerOut(BaseModel):
    """The customer 360: profile, identities, consent, orders with timelines, recent events."""

    id: int
    store_id: int
    email: str | None
    phone: str | None
    first_name: str | None
    last_name: str | None
    country: str | None
    language: str | None
    timezone: str | None
    currency: str | None
    birthday: date | None
    tags: list[str]
    attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    first_seen_at: datetime | None
    identities: list[IdentityOut]
    consents: list[ConsentOut]
    merged_from: list[MergeOut]
    order_count: int
    orders: list[OrderOut]
    events: list[EventOut]
    scores: dict[str, Any] | None = None  # latest analytics scores (patronage.analytics)
