"""Customers, their identities from every source, merges and consent per channel."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from patronage.db.base import Base
from patronage.db.mixins import IdType, StoreOwnedMixin, TimestampMixin
from patronage.db.types import JSONDocument, UTCDateTime

CHANNELS = ("email", "sms", "whatsapp", "push", "inbox")
CONSENT_STATUSES = ("subscribed", "unsubscribed", "pending", "not_subscribed", "redacted")
IDENTITY_KINDS = ("email", "phone", "shopify", "woocommerce", "user_id", "anonymous_id", "external")


class Customer(StoreOwnedMixin, TimestampMixin, Base):
    """One person, whatever sources they came from."""

    __tablename__ = "customers"
    __table_args__ = (Index("ix_customers_store_email", "store_id", "email"),)

    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(20), nullable=True)  # E.164
    first_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    last_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    country: Mapped[str | None] = mapped_column(String(2), nullable=True)
    language: Mapped[str | None] = mapped_column(String(16), nullable=True)
    timezone: Mapped[str | None] = mapped_column(String(64), nullable=True)
    currency: Mapped[str | None] = mapped_column(String(3), nullable=True)
    birthday: Mapped[date | None] = mapped_column(Date(), nullable=True)
    tags: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    merged_into_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("customers.id", ondelete="SET NULL"), nullable=True
    )
    first_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class CustomerIdentity(StoreOwnedMixin, Base):
    """One way a source knows a customer: email, phone, a platform id, a tracking id."""

    __tablename__ = "customer_identities"
    __table_args__ = (UniqueConstraint("store_id", "kind", "value"),)

    customer_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(24))
    value: Mapped[str] = mapped_column(String(320))
    source: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CustomerMerge(StoreOwnedMixin, Base):
    """History: `merged_id` was folded into `surviving_id` because they shared an identity."""

    __tablename__ = "customer_merges"

    surviving_id: Mapped[int] = mapped_column(IdType, ForeignKey("customers.id"), index=True)
    merged_id: Mapped[int] = mapped_column(IdType, ForeignKey("customers.id"))
    reason: Mapped[str] = mapped_column(String(200))
    merged_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Consent(StoreOwnedMixin, Base):
    """The current consent of a customer for one channel."""

    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("customer_id", "channel"),)

    customer_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ConsentChange(StoreOwnedMixin, Base):
    """Append-only history of consent changes, the evidence behind `Consent`."""

    __tablename__ = "consent_changes"

    customer_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
