"""Tables of derived customer analytics: kept aggregates and the latest scores.

These rows are derived from orders and events and are recomputed, never edited. They carry no
`store_id` column on purpose: a customer merge re-points every table that has both `store_id` and
`customer_id`, which would collide with the survivor's own derived row. Derived rows of a merged
customer are dropped at the next refresh instead; the store is reached through `customers`.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, Date, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from patronage.db.base import Base
from patronage.db.mixins import IdType
from patronage.db.types import JSONDocument, Money, UTCDateTime


class CustomerAggregate(Base):
    """Per-customer purchase totals and contact hour, refreshed when the customer's data change."""

    __tablename__ = "customer_aggregates"

    customer_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    order_count: Mapped[int] = mapped_column(Integer)
    first_order_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_order_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    gross_revenue: Mapped[Decimal] = mapped_column(Money())
    net_revenue: Mapped[Decimal] = mapped_column(Money())
    best_contact_hour: Mapped[int | None] = mapped_column(Integer, nullable=True)
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CustomerCategoryAggregate(Base):
    """How many of a customer's purchases contained a category, and their net value."""

    __tablename__ = "customer_category_aggregates"

    customer_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    category: Mapped[str] = mapped_column(String(200), primary_key=True)
    order_count: Mapped[int] = mapped_column(Integer)
    net_revenue: Mapped[Decimal] = mapped_column(Money())


class CustomerScore(Base):
    """The latest scores of one customer, with the moment they were computed."""

    __tablename__ = "customer_scores"

    customer_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    as_of: Mapped[datetime] = mapped_column(UTCDateTime())
    order_count: Mapped[int] = mapped_column(Integer)
    first_order_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_order_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    recency_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    gross_revenue: Mapped[Decimal] = mapped_column(Money())
    net_revenue: Mapped[Decimal] = mapped_column(Money())
    average_order_value: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    recency_score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    frequency_score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    monetary_score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rfm_segment: Mapped[str | None] = mapped_column(String(32), nullable=True)
    lifecycle_stage: Mapped[str] = mapped_column(String(16))
    average_repurchase_interval_days: Mapped[float | None] = mapped_column(Float, nullable=True)
    expected_next_order_date: Mapped[date | None] = mapped_column(Date(), nullable=True)
    orders_per_year: Mapped[float | None] = mapped_column(Float, nullable=True)
    is_vip: Mapped[bool] = mapped_column(Boolean)
    preferred_category_1: Mapped[str | None] = mapped_column(String(200), nullable=True)
    preferred_category_2: Mapped[str | None] = mapped_column(String(200), nullable=True)
    preferred_category_3: Mapped[str | None] = mapped_column(String(200), nullable=True)
    best_contact_hour: Mapped[int | None] = mapped_column(Integer, nullable=True)


class ScoreRun(Base):
    """What a store's stored scores were computed from: an incremental rescore compares them."""

    __tablename__ = "customer_score_runs"

    store_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("stores.id", ondelete="CASCADE"), primary_key=True
    )
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    as_of: Mapped[datetime] = mapped_column(UTCDateTime())
    settings: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    # The quintile bounds of all buyers and the per-category purchases and net value (VIP flag).
    bounds: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    categories: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
