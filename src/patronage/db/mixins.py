"""Columns most tables share."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from patronage.db.types import UTCDateTime
from patronage.kit.clock import utcnow

# BIGINT on PostgreSQL, INTEGER (the rowid alias, so it autoincrements) on SQLite.
IdType = BigInteger().with_variant(Integer(), "sqlite")


class IdMixin:
    """A surrogate integer primary key."""

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)


class StoreOwnedMixin(IdMixin):
    """Every row belongs to exactly one store."""

    @declared_attr
    def store_id(cls) -> Mapped[int]:
        return mapped_column(
            IdType, ForeignKey("stores.id", ondelete="CASCADE"), nullable=False, index=True
        )


class TimestampMixin:
    """When the row was created and last changed."""

    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, onupdate=utcnow, nullable=False
    )
