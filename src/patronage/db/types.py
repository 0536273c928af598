"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Dialect
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python; naive UTC in the column, so both engines agree."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC)


class ScaledDecimal(TypeDecorator[Decimal]):
    """An exact Decimal stored as a BigInteger count of 10**-scale units.

    SQLite has no exact decimal type; a scaled integer is exact on every engine and still sums in
    SQL (divide the SUM by 10**scale).
    """

    impl = BigInteger
    cache_ok = True

    def __init__(self, scale: int = 4) -> None:
        super().__init__()
        self.scale = scale
        self._factor = Decimal(10) ** scale

    def process_bind_param(self, value: Decimal | int | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        scaled = Decimal(value) * self._factor
        integral = scaled.to_integral_value()
        if integral != scaled:
            raise ValueError(f"{value} has more than {self.scale} decimal places")
        return int(integral)

    def process_result_value(self, value: int | None, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(value).scaleb(-self.scale)


def Money() -> ScaledDecimal:
    """An amount of money, exact to 1/10000 of a unit."""
    return ScaledDecimal(4)


def Rate() -> ScaledDecimal:
    """An exchange rate or ratio, exact to 10**-10."""
    return ScaledDecimal(10)


JSONDocument = JSON().with_variant(JSONB(), "postgresql")
