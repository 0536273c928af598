"""Stores and their keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from patronage.db.base import Base
from patronage.db.mixins import IdMixin, IdType, TimestampMixin
from patronage.db.types import JSONDocument, UTCDateTime


class Store(IdMixin, TimestampMixin, Base):
    """A tenant: one shop with its base currency, language, time zone and markets."""

    __tablename__ = "stores"

    name: Mapped[str] = mapped_column(String(200))
    base_currency: Mapped[str] = mapped_column(String(3))
    default_language: Mapped[str] = mapped_column(String(16), default="en")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    markets: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    webhook_secret_encrypted: Mapped[str] = mapped_column(String(500))


class ApiKey(IdMixin, Base):
    """A secret (admin API) or publishable (tracking write) key, stored only as its hash."""

    __tablename__ = "api_keys"
    __table_args__ = (UniqueConstraint("key_hash"),)

    store_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("stores.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))  # secret | publishable
    key_hash: Mapped[str] = mapped_column(String(64))
    key_hint: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
