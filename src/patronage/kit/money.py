"""Money as Decimal with an ISO 4217 currency; never float."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

# ISO 4217 minor units that differ from 2.
_MINOR_UNITS = {
    "BIF": 0,
    "CLP": 0,
    "DJF": 0,
    "GNF": 0,
    "ISK": 0,
    "JPY": 0,
    "KMF": 0,
    "KRW": 0,
    "PYG": 0,
    "RWF": 0,
    "UGX": 0,
    "UYI": 0,
    "VND": 0,
    "VUV": 0,
    "XAF": 0,
    "XOF": 0,
    "XPF": 0,
    "BHD": 3,
    "IQD": 3,
    "JOD": 3,
    "KWD": 3,
    "LYD": 3,
    "OMR": 3,
    "TND": 3,
}


def minor_units(currency: str) -> int:
    """Return the number of decimal places the currency uses."""
    return _MINOR_UNITS.get(currency.upper(), 2)


_STEPS = {places: Decimal(1).scaleb(-places) for places in (0, 2, 3)}  # every value of minor_units


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Round an amount to the currency's minor unit, half to even."""
    return amount.quantize(_STEPS[minor_units(currency)], rounding=ROUND_HALF_EVEN)


def parse_amount(text: str | int | float | Decimal | None) -> Decimal | None:
    """Parse a bare decimal amount ("12.50", "1,234.00", 12); None or blank gives None."""
    if text is None:
        return None
    if isinstance(text, Decimal):
        return text
    if isinstance(text, int):
        return Decimal(text)
    if isinstance(text, float):
        return Decimal(repr(text))
    cleaned = text.strip().replace(",", "")
    if not cleaned:
        return None
    try:
        value = Decimal(cleaned)
    except InvalidOperation as error:
        raise ValueError(f"not an amount: {text!r}") from error
    if not value.is_finite():
        raise ValueError(f"not an amount: {text!r}")
    return value


def is_currency_code(code: str) -> bool:
    """Return whether `code` looks like an ISO 4217 code (three capital letters)."""
    return len(code) == 3 and code.isascii() and code.isalpha() and code.isupper()
