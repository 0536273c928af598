"""Orders as any source describes them, in one canonical shape."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from patronage.customers.schemas import CustomerIn

ZERO = Decimal(0)


@dataclass(slots=True)
class LineIn:
    """One line item."""

    title: str
    quantity: int
    unit_price: Decimal
    sku: str | None = None
    external_id: str | None = None
    category: str | None = None
    discount: Decimal = ZERO
    refunded_quantity: int = 0

    @property
    def total(self) -> Decimal:
        """Line total after its discount."""
        return self.unit_price * self.quantity - self.discount


@dataclass(slots=True)
class RefundIn:
    """Money given back, whole or partial, in the order's currency."""

    external_id: str
    amount: Decimal
    refunded_at: datetime
    reason: str | None = None
    lines: list[dict[str, Any]] = field(default_factory=list)  # [{line_external_id|sku, quantity}]
    restock: bool = False
    amount_base: Decimal | None = None


@dataclass(slots=True)
class OrderIn:
    """An order; timestamps not given keep what is already known (the timeline only grows)."""

    source: str
    external_id: str
    currency: str
    placed_at: datetime
    total: Decimal
    subtotal: Decimal | None = None
    discount: Decimal = ZERO
    shipping: Decimal = ZERO
    tax: Decimal = ZERO
    name: str | None = None
    customer: CustomerIn | None = None
    email: str | None = None
    market: str | None = None
    channel: str | None = None
    financial_status: str | None = None
    fulfillment_status: str | None = None
    paid_at: datetime | None = None
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None
    cancelled_at: datetime | None = None
    returned_at: datetime | None = None
    carrier: str | None = None
    tracking_number: str | None = None
    promised_delivery_date: date | None = None
    discount_codes: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    lines: list[LineIn] = field(default_factory=list)
    refunds: list[RefundIn] = field(default_factory=list)
    total_base: Decimal | None = None  # when the source states the base-currency amount itself
    refunded: Decimal | None = None  # when the source states only a refunded total
    # A stable digest (at most 32 characters) of the source's description, e.g. of its CSV rows,
    # by which a replay is recognised; without it the order's content is hashed.
    fingerprint: str | None = field(default=None, repr=False, compare=False)


@dataclass
class UpsertSummary:
    """What an upsert of orders did."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    order_ids: list[int] = field(default_factory=list)
    customers_created: int = 0
