"""Products of a store."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from patronage.db.base import Base
from patronage.db.mixins import StoreOwnedMixin, TimestampMixin
from patronage.db.types import Money, Rate


class Product(StoreOwnedMixin, TimestampMixin, Base):
    """A sellable product, by SKU."""

    __tablename__ = "products"
    __table_args__ = (UniqueConstraint("store_id", "sku"),)

    sku: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(String(500))
    category: Mapped[str | None] = mapped_column(String(200), nullable=True)
    price: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    currency: Mapped[str | None] = mapped_column(String(3), nullable=True)
    margin: Mapped[Decimal | None] = mapped_column(Rate(), nullable=True)  # 0.35 = 35 %
    warranty_days: Mapped[int | None] = mapped_column(nullable=True)
    replenishment_days: Mapped[int | None] = mapped_column(nullable=True)
    external_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
