"""Converting order amounts to the store's base currency with the dated exchange-rate table."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sqlalchemy.orm import Session

from patronage.errors import ValidationFailedError
from patronage.kit.money import is_currency_code
from patronage.orders import repository

ONE = Decimal(1)


@dataclass
class RateBook:
    """All exchange rates of one store in memory: the latest rate on or before a date wins."""

    base_currency: str
    dates: dict[str, list[date]] = field(default_factory=dict)
    rates: dict[str, list[Decimal]] = field(default_factory=dict)

    def rate(self, currency: str, on: date) -> Decimal:
        """Base-currency units per unit of `currency` on `on`; raise if no rate is known."""
        if currency == self.base_currency:
            return ONE
        dates = self.dates.get(currency)
        if not dates:
            raise ValidationFailedError(
                f"no exchange rate from {currency} to {self.base_currency}; "
                f"add one with `patronage fx set {currency} RATE`"
            )
        index = bisect.bisect_right(dates, on) - 1
        # Before the first known rate, the earliest one is the best estimate we have.
        return self.rates[currency][max(index, 0)]


def load_rate_book(session: Session, store_id: int, base_currency: str) -> RateBook:
    """Load the store's exchange-rate table."""
    book = RateBook(base_currency)
    for currency, rate_date, rate in repository.all_rates(session, store_id):
        book.dates.setdefault(currency, []).append(rate_date)
        book.rates.setdefault(currency, []).append(rate)
    return book


def set_rate(
    session: Session, store_id: int, *, currency: str, rate_date: date, rate: Decimal, source: str
) -> None:
    """Record (or replace) the rate of `currency` on `rate_date`."""
    code = currency.upper()
    if not is_currency_code(code):
        raise ValidationFailedError(f"{currency!r} is not an ISO 4217 currency code")
    if rate <= 0:
        raise ValidationFailedError(f"exchange rate must be positive, got {rate}")
    repository.upsert_rate(
        session, store_id=store_id, currency=code, rate_date=rate_date, rate=rate, source=source
    )
