"""Helpers shared by the tracking tests."""

from __future__ import annotations

import base64
from typing import Any

from sqlalchemy import Engine, select

from patronage.db.session import session_scope
from patronage.tracking.models import Event


def basic_auth(write_key: str) -> dict[str, str]:
    """The Authorization header the Segment and RudderStack clients send."""
    token = base64.b64encode(f"{write_key}:".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def stored_events(engine: Engine, store_id: int) -> list[dict[str, Any]]:
    """Every event of the store, oldest row first, as plain dicts."""
    with session_scope(engine) as session:
        rows = session.scalars(select(Event).where(Event.store_id == store_id).order_by(Event.id))
        return [
            {
                column: getattr(row, column)
                for column in (
                    "message_id",
                    "type",
                    "name",
                    "customer_id",
                    "user_id",
                    "anonymous_id",
                    "occurred_at",
                    "received_at",
                    "properties",
                    "context",
                )
            }
            for row in rows
        ]
