"""Orders with lines, the status timeline, refunds and the dated exchange-rate table."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from patronage.db.base import Base
from patronage.db.mixins import IdType, StoreOwnedMixin, TimestampMixin
from patronage.db.types import JSONDocument, Money, Rate, UTCDateTime

ORDER_STATUSES = (
    "placed",
    "paid",
    "shipped",
    "delivered",
    "cancelled",
    "returned",
    "refunded",
    "partially_refunded",
)


class ExchangeRate(StoreOwnedMixin, Base):
    """How many units of the store's base currency one unit of `currency` bought on `rate_date`."""

    __tablename__ = "exchange_rates"
    __table_args__ = (UniqueConstraint("store_id", "currency", "rate_date"),)

    currency: Mapped[str] = mapped_column(String(3))
    rate_date: Mapped[date] = mapped_column(Date())
    rate: Mapped[Decimal] = mapped_column(Rate())
    source: Mapped[str] = mapped_column(String(64), default="manual")


class Order(StoreOwnedMixin, TimestampMixin, Base):
    """An order in its own currency with its amounts in the store's base currency."""

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("store_id", "source", "external_id"),
        Index("ix_orders_store_customer_placed", "store_id", "customer_id", "placed_at"),
        Index("ix_orders_store_placed", "store_id", "placed_at"),
    )

    source: Mapped[str] = mapped_column(String(32))  # shopify | woocommerce | tracking | csv | demo
    external_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    customer_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("customers.id", ondelete="SET NULL"), nullable=True
    )
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    market: Mapped[str | None] = mapped_column(String(2), nullable=True)
    channel: Mapped[str | None] = mapped_column(String(64), nullable=True)  # web, pos, app, …
    currency: Mapped[str] = mapped_column(String(3))
    subtotal: Mapped[Decimal] = mapped_column(Money())
    discount: Mapped[Decimal] = mapped_column(Money())
    shipping: Mapped[Decimal] = mapped_column(Money())
    tax: Mapped[Decimal] = mapped_column(Money())
    total: Mapped[Decimal] = mapped_column(Money())
    refunded: Mapped[Decimal] = mapped_column(Money())
    fx_rate: Mapped[Decimal] = mapped_column(Rate())  # base units per order-currency unit
    subtotal_base: Mapped[Decimal] = mapped_column(Money())
    total_base: Mapped[Decimal] = mapped_column(Money())
    refunded_base: Mapped[Decimal] = mapped_column(Money())
    status: Mapped[str] = mapped_column(String(24))
    financial_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    fulfillment_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    shipped_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    returned_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    carrier: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tracking_number: Mapped[str | None] = mapped_column(String(128), nullable=True)
    promised_delivery_date: Mapped[date | None] = mapped_column(Date(), nullable=True)
    discount_codes: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    tags: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    content_hash: Mapped[str] = mapped_column(String(32))


class OrderLine(StoreOwnedMixin, Base):
    """One line item of an order."""

    __tablename__ = "order_lines"
    __table_args__ = (
        UniqueConstraint("order_id", "line_number"),
        # Serves every look-up by store, and lets the kept category aggregates find the store's
        # categorised lines in the index alone instead of reading each line of the store.
        Index("ix_order_lines_store_category", "store_id", "category", "order_id"),
    )

    store_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("stores.id", ondelete="CASCADE"), nullable=False
    )
    order_id: Mapped[int] = mapped_column(IdType, ForeignKey("orders.id", ondelete="CASCADE"))
    line_number: Mapped[int] = mapped_column(Integer)
    external_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    product_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("products.id", ondelete="SET NULL"), nullable=True
    )
    sku: Mapped[str | None] = mapped_column(String(128), nullable=True)
    title: Mapped[str] = mapped_column(String(500))
    category: Mapped[str | None] = mapped_column(String(200), nullable=True)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(Money())
    discount: Mapped[Decimal] = mapped_column(Money())
    total: Mapped[Decimal] = mapped_column(Money())
    refunded_quantity: Mapped[int] = mapped_column(Integer, default=0)


class OrderStatusChange(StoreOwnedMixin, Base):
    """One step of the order's timeline (placed → paid → shipped → delivered, or off the path)."""

    __tablename__ = "order_status_changes"
    __table_args__ = (UniqueConstraint("order_id", "status", "occurred_at"),)

    order_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("orders.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(24))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    details: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)


class Refund(StoreOwnedMixin, Base):
    """Money given back on an order, whole or partial."""

    __tablename__ = "refunds"
    __table_args__ = (UniqueConstraint("order_id", "external_id"),)

    order_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("orders.id", ondelete="CASCADE"), index=True
    )
    external_id: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Decimal] = mapped_column(Money())
    amount_base: Mapped[Decimal] = mapped_column(Money())
    currency: Mapped[str] = mapped_column(String(3))
    refunded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument, default=list)
    restock: Mapped[bool] = mapped_column(default=False)
