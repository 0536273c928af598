"""Stores are created with hashed keys, and keys authenticate only their own kind."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from patronage.errors import AuthenticationError, ValidationFailedError
from patronage.stores.models import ApiKey
from patronage.stores.service import NewStore, authenticate, create_store, webhook_secret


def test_keys_are_stored_only_as_hashes(session: Session, new_store: NewStore) -> None:
    stored = session.scalars(select(ApiKey).where(ApiKey.store_id == new_store.store.id)).all()
    assert {key.kind for key in stored} == {"secret", "publishable"}
    for key in stored:
        assert new_store.secret_key not in key.key_hash
        assert new_store.publishable_key not in key.key_hash
    assert new_store.webhook_secret not in new_store.store.webhook_secret_encrypted
    assert webhook_secret(new_store.store) == new_store.webhook_secret


def test_keys_authenticate_their_store_and_kind(session: Session, new_store: NewStore) -> None:
    store_id = new_store.store.id
    assert authenticate(session, new_store.secret_key, kind="secret") == store_id
    assert authenticate(session, new_store.publishable_key, kind="publishable") == store_id
    with pytest.raises(AuthenticationError):
        authenticate(session, new_store.publishable_key, kind="secret")
    with pytest.raises(AuthenticationError):
        authenticate(session, "sk_live_wrong", kind="secret")


@pytest.mark.parametrize(
    ("currency", "timezone"), [("usd1", "UTC"), ("USD", "Mars/Olympus"), ("US", "UTC")]
)
def test_bad_store_settings_are_refused(session: Session, currency: str, timezone: str) -> None:
    with pytest.raises(ValidationFailedError):
        create_store(session, name="x", base_currency=currency, timezone=timezone)
