"""Records of inbound deliveries, so a retried webhook is processed once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from patronage.db.base import Base
from patronage.db.mixins import StoreOwnedMixin
from patronage.db.types import UTCDateTime


class WebhookDelivery(StoreOwnedMixin, Base):
    """One accepted webhook delivery, keyed by the sender's delivery id."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("store_id", "platform", "delivery_id"),)

    platform: Mapped[str] = mapped_column(String(32))
    delivery_id: Mapped[str] = mapped_column(String(128))
    topic: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    result: Mapped[str] = mapped_column(String(200), default="")
