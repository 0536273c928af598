"""All SQL of stores and keys."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from patronage.stores.models import ApiKey, Store


def add_store(session: Session, store: Store) -> Store:
    """Insert a store and flush so it has an id."""
    session.add(store)
    session.flush()
    return store


def add_key(session: Session, key: ApiKey) -> None:
    """Insert an API key row."""
    session.add(key)


def get_store(session: Session, store_id: int) -> Store | None:
    """Return the store or None."""
    return session.get(Store, store_id)


def list_stores(session: Session) -> list[Store]:
    """Return every store, oldest first."""
    return list(session.scalars(select(Store).order_by(Store.id)))


def find_active_key(session: Session, key_hash: str) -> ApiKey | None:
    """Return the unrevoked key with this hash."""
    return session.scalars(
        select(ApiKey).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
    ).first()
