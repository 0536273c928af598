"""Request dependencies: the unit of work and authentication by store key."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from threading import Lock
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from patronage.errors import AuthenticationError
from patronage.stores import service as store_service

_KEY_CACHE_SECONDS = 60.0


class KeyCache:
    """Remembers which store a key belongs to for a minute, so hot paths skip the look-up."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], tuple[int, float]] = {}
        self._lock = Lock()

    def store_for(self, factory: sessionmaker[Session], key: str, kind: str) -> int:
        """Return the store id of `key`, from the cache or the database."""
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get((key, kind))
        if hit is not None and hit[1] > now:
            return hit[0]
        with factory() as session:
            store_id = store_service.authenticate(session, key, kind=kind)
        with self._lock:
            self._entries[(key, kind)] = (store_id, now + _KEY_CACHE_SECONDS)
        return store_id


def session_factory(request: Request) -> sessionmaker[Session]:
    """Return the app's session factory."""
    factory: sessionmaker[Session] = request.app.state.session_factory
    return factory


def get_session(request: Request) -> Iterator[Session]:
    """One unit of work per request: committed before the response is sent, rolled back on error."""
    session = session_factory(request)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def secret_store_id(request: Request) -> int:
    """Authenticate `Authorization: Bearer <secret key>` and return the store id."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("send the store's secret key as `Authorization: Bearer sk_…`")
    cache: KeyCache = request.app.state.key_cache
    return cache.store_for(session_factory(request), token.strip(), "secret")


def write_key_store_id(request: Request) -> int:
    """Authenticate a tracking write key (HTTP Basic user name, as Segment clients send it)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    key = ""
    if scheme.lower() == "basic" and token:
        try:
            key = base64.b64decode(token.strip()).decode().partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            key = ""
    if not key:
        raise AuthenticationError("send the write key as the HTTP Basic user name")
    cache: KeyCache = request.app.state.key_cache
    return cache.store_for(session_factory(request), key, "publishable")


# scope="function": commit when the endpoint returns, before the response is sent (FastAPI's
# default "request" scope runs the code after `yield` only once the response has gone out, so a
# failed commit would follow a 200).
DbSession = Annotated[Session, Depends(get_session, scope="function")]
SecretStoreId = Annotated[int, Depends(secret_store_id)]
WriteKeyStoreId = Annotated[int, Depends(write_key_store_id)]
