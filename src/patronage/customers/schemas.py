"""What every source tells us about a customer, in one canonical shape."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class ConsentIn:
    """A consent statement for one channel."""

    status: str  # subscribed | unsubscribed | pending | not_subscribed
    source: str
    recorded_at: datetime


@dataclass(slots=True)
class CustomerIn:
    """A customer as a source describes them; blank fields leave what we know untouched."""

    source: str
    email: str | None = None
    phone: str | None = None  # E.164 already
    first_name: str | None = None
    last_name: str | None = None
    country: str | None = None
    language: str | None = None
    timezone: str | None = None
    currency: str | None = None
    birthday: date | None = None
    tags: list[str] | None = None
    attributes: dict[str, Any] | None = None
    identities: list[tuple[str, str]] = field(default_factory=list)  # (kind, value)
    consents: dict[str, ConsentIn] = field(default_factory=dict)  # channel -> consent
    seen_at: datetime | None = None

    def identity_keys(self) -> list[tuple[str, str]]:
        """Every (kind, value) by which this customer can be recognised, strongest first."""
        keys = list(self.identities)
        if self.email:
            keys.append(("email", self.email))
        if self.phone:
            keys.append(("phone", self.phone))
        return keys


@dataclass(frozen=True, slots=True)
class ResolvedCustomer:
    """The outcome of resolving one CustomerIn."""

    customer_id: int
    created: bool
    updated: bool


PROFILE_FIELDS = (
    "email", "phone", "first_name", "last_name", "country", "language", "timezone", "currency",
    "birthday",
)  # fmt: skip


def normalise_email(raw: str | None) -> str | None:
    """Lower-case and trim an email; blank gives None; raise ValueError if it has no @."""
    if raw is None:
        return None
    cleaned = raw.strip().lower()
    if not cleaned:
        return None
    local, _, domain = cleaned.partition("@")
    if not local or "." not in domain or " " in cleaned:
        raise ValueError(f"not an email address: {raw!r}")
    return cleaned
