"""Behavioural events, de-duplicated by message id."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from patronage.db.base import Base
from patronage.db.mixins import IdType, StoreOwnedMixin
from patronage.db.types import JSONDocument, UTCDateTime


class Event(StoreOwnedMixin, Base):
    """Something a customer did: viewed a product, added to cart, opened a message …"""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("store_id", "message_id"),
        Index("ix_events_store_customer_time", "store_id", "customer_id", "occurred_at"),
        Index("ix_events_store_name_time", "store_id", "name", "occurred_at"),
        Index("ix_events_store_anonymous", "store_id", "anonymous_id"),
    )

    message_id: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(16))  # track | identify | page | screen | …
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    customer_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("customers.id", ondelete="SET NULL"), nullable=True
    )
    user_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    anonymous_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    source: Mapped[str] = mapped_column(String(32), default="tracking")
    properties: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    context: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
