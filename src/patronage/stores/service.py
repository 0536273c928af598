"""Creating stores, issuing their keys and authenticating requests by key."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from patronage.errors import AuthenticationError, NotFoundError, ValidationFailedError
from patronage.kit import secrets
from patronage.kit.clock import utcnow
from patronage.kit.money import is_currency_code
from patronage.kit.times import check_timezone
from patronage.stores import repository
from patronage.stores.models import ApiKey, Store

SECRET_PREFIX = "sk_live_"
PUBLISHABLE_PREFIX = "pk_live_"
WEBHOOK_PREFIX = "whsec_"


@dataclass(frozen=True)
class NewStore:
    """A created store with the only copy of its plain-text keys."""

    store: Store
    secret_key: str
    publishable_key: str
    webhook_secret: str


def create_store(
    session: Session,
    *,
    name: str,
    base_currency: str,
    timezone: str = "UTC",
    default_language: str = "en",
    markets: list[str] | None = None,
    webhook_secret: str | None = None,
) -> NewStore:
    """Create a store with a secret key, a publishable write key and a webhook secret."""
    currency = base_currency.upper()
    if not is_currency_code(currency):
        raise ValidationFailedError(f"base currency {base_currency!r} is not an ISO 4217 code")
    try:
        check_timezone(timezone)
    except ValueError as error:
        raise ValidationFailedError(str(error)) from error
    if not name.strip():
        raise ValidationFailedError("store name is empty")
    plain_webhook_secret = webhook_secret or secrets.new_key(WEBHOOK_PREFIX)
    store = repository.add_store(
        session,
        Store(
            name=name.strip(),
            base_currency=currency,
            timezone=timezone,
            default_language=default_language,
            markets=[market.upper() for market in markets or []],
            settings={},
            webhook_secret_encrypted=secrets.encrypt(plain_webhook_secret),
        ),
    )
    secret_key = issue_key(session, store_id=store.id, kind="secret")
    publishable_key = issue_key(session, store_id=store.id, kind="publishable")
    return NewStore(store, secret_key, publishable_key, plain_webhook_secret)


def issue_key(session: Session, *, store_id: int, kind: str) -> str:
    """Issue a new key of `kind` for the store and return it in plain text (shown once)."""
    prefix = SECRET_PREFIX if kind == "secret" else PUBLISHABLE_PREFIX
    plain = secrets.new_key(prefix)
    repository.add_key(
        session,
        ApiKey(
            store_id=store_id,
            kind=kind,
            key_hash=secrets.hash_key(plain),
            key_hint=plain[-4:],
            created_at=utcnow(),
        ),
    )
    return plain


def get_store(session: Session, store_id: int) -> Store:
    """Return the store or raise NotFoundError."""
    store = repository.get_store(session, store_id)
    if store is None:
        raise NotFoundError(f"store {store_id} does not exist")
    return store


def authenticate(session: Session, plain_key: str, *, kind: str) -> int:
    """Return the id of the store that owns this key of `kind`, or raise AuthenticationError."""
    key = repository.find_active_key(session, secrets.hash_key(plain_key))
    if key is None or key.kind != kind:
        raise AuthenticationError(f"invalid {kind} key")
    return key.store_id


def webhook_secret(store: Store) -> str:
    """Return the store's webhook signing secret in plain text."""
    return secrets.decrypt(store.webhook_secret_encrypted)


def set_webhook_secret(session: Session, store: Store, secret: str) -> None:
    """Replace the webhook signing secret (e.g. with the Shopify app's client secret)."""
    if len(secret) < 8:
        raise ValidationFailedError("webhook secret must be at least 8 characters")
    store.webhook_secret_encrypted = secrets.encrypt(secret)
