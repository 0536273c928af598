"""Phone numbers normalised to E.164."""

from __future__ import annotations

import phonenumbers


def to_e164(raw: str | None, default_region: str | None = None) -> str | None:
    """Return the number in E.164 (`+4915112345678`), None when blank; ValueError if invalid."""
    if raw is None:
        return None
    cleaned = raw.strip().lstrip("'")
    if not cleaned:
        return None
    try:
        number = phonenumbers.parse(cleaned, (default_region or "").upper() or None)
    except phonenumbers.NumberParseException as error:
        raise ValueError(f"not a phone number: {raw!r}") from error
    if not phonenumbers.is_possible_number(number):
        raise ValueError(f"not a possible phone number: {raw!r}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
