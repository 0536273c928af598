"""The official Segment and RudderStack Python clients against a live server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from rudderstack.analytics.client import Client as RudderStackClient
from segment.analytics.client import Client as SegmentClient
from sqlalchemy import Engine, select

from patronage.customers.models import Customer, CustomerIdentity
from patronage.db.session import session_scope
from patronage.orders.models import Order, OrderLine
from patronage.stores.service import NewStore
from patronage.tracking import routes
from tests.tracking.helpers import stored_events

AT = datetime(2026, 6, 30, 9, 0, tzinfo=UTC)
ORDER = {
    "order_id": "W-1001",
    "total": 31.5,
    "revenue": 26.5,
    "shipping": 5,
    "currency": "USD",
    "coupon": "WELCOME",
    "products": [
        {
            "product_id": "p-1",
            "sku": "TEA-1",
            "name": "Sencha",
            "category": "Tea",
            "price": 13.25,
            "quantity": 2,
        },
    ],
}

ClientFactory = Callable[..., Any]


@pytest.fixture
def content_encodings(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The Content-Encoding of every body the live server decodes."""
    seen: list[str | None] = []
    decode = routes.decode_body

    def recording(raw: bytes, content_encoding: str | None) -> bytes:
        seen.append(content_encoding)
        return decode(raw, content_encoding)

    monkeypatch.setattr(routes, "decode_body", recording)
    return seen


@pytest.fixture(params=["segment", "rudderstack"])
def client_factory(request: pytest.FixtureRequest, live_server: str) -> Iterator[ClientFactory]:
    """Build a client of each library pointed at the live server, shut down after the test."""
    made: list[Any] = []

    def build(write_key: str, errors: list[Exception]) -> Any:
        def on_error(error: Exception, batch: Any) -> None:
            errors.append(error)

        if request.param == "segment":
            client: Any = SegmentClient(
                write_key,
                host=live_server,
                on_error=on_error,
                gzip=True,
                upload_interval=0.05,
                max_retries=1,
            )
        else:  # RudderStack compresses by default
            client = RudderStackClient(
                write_key, host=live_server, on_error=on_error, upload_interval=0.05, max_retries=1
            )
        made.append(client)
        return client

    yield build
    for client in made:
        client.shutdown()


def _send_session(client: Any, prefix: str) -> None:
    client.page(
        anonymous_id="a-1",
        name="Home",
        category="Shop",
        properties={"path": "/"},
        timestamp=AT,
        message_id=f"{prefix}-page",
    )
    client.identify(
        "u-1",
        {"email": "Ana@Example.com", "firstName": "Ana", "plan": "pro"},
        anonymous_id="a-1",
        timestamp=AT,
        message_id=f"{prefix}-identify",
    )
    client.track(
        "u-1",
        "Product Viewed",
        {"sku": "TEA-1", "price": 13.25},
        timestamp=AT,
        message_id=f"{prefix}-viewed",
    )
    client.track("u-1", "Order Completed", ORDER, timestamp=AT, message_id=f"{prefix}-order")
    client.flush()


def _snapshot(engine: Engine, store_id: int) -> dict[str, Any]:
    # one transaction at a time: every SQLite transaction here takes the write lock
    events = stored_events(engine, store_id)
    with session_scope(engine) as session:
        customers = session.scalars(select(Customer).where(Customer.store_id == store_id)).all()
        identities = session.execute(
            select(
                CustomerIdentity.kind, CustomerIdentity.value, CustomerIdentity.customer_id
            ).where(CustomerIdentity.store_id == store_id)
        ).all()
        orders = session.scalars(select(Order).where(Order.store_id == store_id)).all()
        lines = session.execute(
            select(OrderLine.sku, OrderLine.quantity, OrderLine.unit_price).where(
                OrderLine.store_id == store_id
            )
        ).all()
        return {
            "customers": [
                (c.id, c.email, c.first_name, c.attributes, c.updated_at) for c in customers
            ],
            "identities": sorted(identities),
            "orders": [
                (
                    o.source,
                    o.external_id,
                    o.total,
                    o.status,
                    o.customer_id,
                    o.discount_codes,
                    o.updated_at,
                )
                for o in orders
            ],
            "lines": sorted(lines),
            "events": events,
        }


def test_a_client_session_lands_and_a_replay_changes_nothing(
    engine: Engine,
    committed_store: NewStore,
    client_factory: ClientFactory,
    content_encodings: list[str | None],
) -> None:
    # given a storefront session sent through the official client
    errors: list[Exception] = []
    _send_session(client_factory(committed_store.publishable_key, errors), "s")
    # then no error was reported and the bodies were gzip-compressed
    assert errors == []
    assert content_encodings and set(content_encodings) == {"gzip"}
    # and the events, the customer and the order landed
    store_id = committed_store.store.id
    state = _snapshot(engine, store_id)
    [(customer_id, email, first_name, attributes, _)] = state["customers"]
    assert (email, first_name, attributes) == ("ana@example.com", "Ana", {"plan": "pro"})
    assert ("anonymous_id", "a-1", customer_id) in state["identities"]
    events = {event["message_id"]: event for event in state["events"]}
    assert sorted(events) == ["s-identify", "s-order", "s-page", "s-viewed"]
    assert {event["customer_id"] for event in events.values()} == {customer_id}
    assert events["s-page"]["occurred_at"] == AT and events["s-page"]["name"] == "Home"
    assert events["s-viewed"]["context"]["library"]["name"] == "analytics-python"
    assert state["orders"][0][:6] == (
        "tracking",
        "W-1001",
        Decimal("31.5"),
        "paid",
        customer_id,
        ["WELCOME"],
    )
    assert state["lines"] == [("TEA-1", 2, Decimal("13.25"))]
    # when the same messages are sent again
    _send_session(client_factory(committed_store.publishable_key, errors), "s")
    # then nothing changed
    assert errors == []
    assert _snapshot(engine, store_id) == state


def test_a_wrong_write_key_is_reported_through_on_error(
    engine: Engine, committed_store: NewStore, client_factory: ClientFactory
) -> None:
    errors: list[Exception] = []
    client = client_factory("pk_live_not-a-key", errors)
    client.track("u-1", "Product Viewed", {"sku": "TEA-1"}, message_id="wrong-key")
    client.flush()
    [error] = errors
    assert getattr(error, "status", None) == 401
    assert getattr(error, "code", None) == "unauthorized"
    assert stored_events(engine, committed_store.store.id) == []
