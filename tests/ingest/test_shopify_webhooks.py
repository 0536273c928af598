"""Shopify webhooks over HTTP: signatures, de-duplication (also concurrent), topics and errors."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from patronage.customers.models import Consent, Customer, CustomerIdentity
from patronage.db.session import session_scope
from patronage.ingest.models import WebhookDelivery
from patronage.orders.models import Order, OrderLine, OrderStatusChange, Refund
from patronage.stores.service import NewStore
from patronage.tracking.models import Event
from tests.ingest.test_shopify_payloads import fulfilled, load

ORDER_ID = "5832610693256"


def sign(secret: str, body: bytes) -> str:
    """Shopify's signature: base64 of HMAC-SHA256 over the raw body with the app's secret."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def deliver(
    client: httpx.Client,
    store: NewStore,
    topic: str,
    payload: dict[str, Any] | bytes,
    *,
    webhook_id: str | None = None,
    signature: str | None = None,
    store_id: int | str | None = None,
) -> httpx.Response:
    """POST one delivery as Shopify sends it (compact JSON, signed unless told otherwise)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": signature if signature is not None
        else sign(store.webhook_secret, body),
        "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
        "X-Shopify-Shop-Domain": "tea-house.myshopify.com",
        "X-Shopify-API-Version": "2026-07",
        "X-Shopify-Triggered-At": "2026-06-24T17:28:36.123456Z",
    }  # fmt: skip
    target = store.store.id if store_id is None else store_id
    return client.post(f"/v1/webhooks/shopify/{target}", content=body, headers=headers)


def counts(engine: Engine, store: NewStore) -> dict[str, int]:
    """How many rows of each kind the store holds."""
    with session_scope(engine) as session:
        return {
            model.__tablename__: session.scalar(
                select(func.count()).select_from(model).where(model.store_id == store.store.id)
            )
            or 0
            for model in (Order, OrderLine, Refund, Customer, WebhookDelivery, Event)
        }


def stored_order(engine: Engine, store: NewStore, external_id: str = ORDER_ID) -> Order:
    """The store's order with this Shopify id."""
    with session_scope(engine) as session:
        return session.scalars(
            select(Order).where(Order.store_id == store.store.id, Order.external_id == external_id)
        ).one()


def timeline(engine: Engine, order_id: int) -> list[str]:
    """The order's timeline steps, oldest first."""
    with session_scope(engine) as session:
        return list(
            session.scalars(
                select(OrderStatusChange.status)
                .where(OrderStatusChange.order_id == order_id)
                .order_by(OrderStatusChange.occurred_at, OrderStatusChange.id)
            )
        )


def at_once(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    """Run the calls on as many threads, released together."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], httpx.Response]) -> httpx.Response:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def test_signed_order_creates_order_with_lines_timeline_and_base_amounts(
    engine: Engine, committed_store: NewStore, api_client: TestClient
) -> None:
    # When Shopify delivers a new order paid in EUR on a USD shop
    response = deliver(api_client, committed_store, "orders/create", load("order"))

    # Then it is accepted and recorded in shop money, with the base amount and no FX table
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "processed"
    order = stored_order(engine, committed_store)
    assert (order.source, order.name, order.currency, order.status) == (
        "shopify", "#1001", "USD", "paid"
    )  # fmt: skip
    assert (order.total, order.total_base, order.fx_rate) == (
        Decimal("97.20"), Decimal("97.20"), Decimal(1)
    )  # fmt: skip
    assert order.attributes["presentment_currency"] == "EUR"
    assert order.attributes["presentment_total"] == "90.00"
    assert (order.market, order.channel, order.discount_codes) == ("DE", "web", ["WELCOME10"])
    assert timeline(engine, order.id) == ["placed", "paid"]
    with session_scope(engine) as session:
        lines = session.scalars(
            select(OrderLine).where(OrderLine.order_id == order.id).order_by(OrderLine.line_number)
        ).all()
        assert [(line.sku, line.quantity, line.total) for line in lines] == [
            ("TEA-OOL-100", 2, Decimal("43.20")), ("POT-CER-1", 1, Decimal("43.20"))
        ]  # fmt: skip
        customer = session.get(Customer, order.customer_id)
        assert customer is not None and customer.email == "ana.schmidt@example.de"
        assert customer.phone == "+4915112345678"
        consent = session.scalars(select(Consent).where(Consent.customer_id == customer.id)).one()
        assert (consent.channel, consent.status) == ("email", "subscribed")
        delivery = session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.store_id == committed_store.store.id)
        ).one()
        assert (delivery.platform, delivery.topic) == ("shopify", "orders/create")
        assert delivery.result == f"processed: order {order.id} created"


def test_bad_or_missing_signature_and_unknown_store_are_401_and_write_nothing(
    engine: Engine, committed_store: NewStore, api_client: TestClient
) -> None:
    payload = load("order")
    body = json.dumps(payload).encode()
    wrong_secret = sign("not-the-secret", body)
    tampered = json.dumps({**payload, "total_price": "0.01"}).encode()
    attempts = [
        deliver(api_client, committed_store, "orders/create", body, signature=wrong_secret),
        deliver(api_client, committed_store, "orders/create", body, signature=""),
        deliver(api_client, committed_store, "orders/create", tampered,
                signature=sign(committed_store.webhook_secret, body)),
        deliver(api_client, committed_store, "orders/create", body, store_id=987_654_321),
        deliver(api_client, committed_store, "orders/create", body, store_id="shop"),
    ]  # fmt: skip
    for response in attempts:
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
    # An unknown store is indistinguishable from a wrong signature.
    assert len({response.json()["detail"] for response in attempts}) == 1
    assert set(counts(engine, committed_store).values()) == {0}


def test_same_delivery_nine_times_makes_one_order_and_one_delivery(
    engine: Engine, committed_store: NewStore, api_client: TestClient
) -> None:
    webhook_id = str(uuid.uuid4())
    responses = [
        deliver(api_client, committed_store, "orders/create", load("order"), webhook_id=webhook_id)
        for _ in range(9)
    ]
    assert [response.status_code for response in responses] == [200] * 9
    statuses = [response.json()["status"] for response in responses]
    assert statuses == ["processed"] + ["duplicate"] * 8
    assert counts(engine, committed_store) == {
        "orders": 1, "order_lines": 2, "refunds": 0, "customers": 1, "webhook_deliveries": 1,
        "events": 0,
    }  # fmt: skip


def test_same_delivery_nine_times_concurrently_makes_one_order(
    engine: Engine, committed_store: NewStore, live_server: str
) -> None:
    webhook_id = str(uuid.uuid4())

    def post() -> httpx.Response:
        with httpx.Client(base_url=live_server, timeout=60) as client:
            return deliver(client, committed_store, "orders/create", load("order"),
                           webhook_id=webhook_id)  # fmt: skip

    responses = at_once([post] * 9)
    assert [response.status_code for response in responses] == [200] * 9
    statuses = sorted(response.json()["status"] for response in responses)
    assert statuses == ["duplicate"] * 8 + ["processed"]
    assert counts(engine, committed_store) == {
        "orders": 1, "order_lines": 2, "refunds": 0, "customers": 1, "webhook_deliveries": 1,
        "events": 0,
    }  # fmt: skip


def _lifecycle(order_number: int) -> list[tuple[str, dict[str, Any]]]:
    """The create, paid and fulfilled deliveries of one order, pending at first."""
    created = load("order")
    created["id"] = 5832610693256 + order_number
    created["name"] = f"#{1001 + order_number}"
    created["financial_status"] = "pending"
    paid = copy.deepcopy(created)
    paid["financial_status"] = "paid"
    paid["updated_at"] = "2026-06-24T19:29:10+02:00"
    shipped = fulfilled(paid)
    return [("orders/create", created), ("orders/paid", paid), ("orders/fulfilled", shipped)]


def test_create_paid_and_fulfilled_at_once_make_one_order_with_the_merged_timeline(
    engine: Engine, committed_store: NewStore, live_server: str
) -> None:
    # Given five orders whose create, paid and fulfilled deliveries all arrive at the same moment
    deliveries = [delivery for number in range(5) for delivery in _lifecycle(number)]

    def poster(topic: str, payload: dict[str, Any]) -> Callable[[], httpx.Response]:
        def post() -> httpx.Response:
            with httpx.Client(base_url=live_server, timeout=60) as client:
                return deliver(client, committed_store, topic, payload)

        return post

    responses = at_once([poster(topic, payload) for topic, payload in deliveries])

    # Then each order exists once, with every step and the newest statuses, whatever the order
    assert [response.status_code for response in responses] == [200] * 15, [
        response.text for response in responses if response.status_code != 200
    ]
    assert counts(engine, committed_store)["orders"] == 5
    assert counts(engine, committed_store)["customers"] == 1
    for number in range(5):
        order = stored_order(engine, committed_store, str(5832610693256 + number))
        assert timeline(engine, order.id) == ["placed", "paid", "shipped", "delivered"]
        assert (order.status, order.financial_status, order.fulfillment_status) == (
            "delivered", "paid", "fulfilled"
        )  # fmt: skip
        assert (order.carrier, order.tracking_number) == ("DHL Express", "JD014600006281230704")


def test_an_older_delivery_arriving_late_does_not_undo_newer_statuses(
    engine: Engine, committed_store: NewStore, api_client: TestClient
) -> None:
    created, paid, shipped = (payload for _, payload in _lifecycle(0))
    for topic, payload in (("orders/fulfilled", shipped), ("orders/create", created),
                           ("orders/paid", paid)):  # fmt: skip
        assert deliver(api_client, committed_store, topic, payload).status_code == 200
    order = stored_order(engine, committed_store)
    assert (order.status, order.financial_status, order.fulfillment_status) == (
        "delivered", "paid", "fulfilled"
    )  # fmt: skip
    assert timeline(engine, order.id) == ["placed", "paid", "shipped", "delivered"]


def test_refunds_reverse_money_and_wait_for_their_order(
    engine: Engine, committed_store: NewStore, api_client: TestClient
) -> None:
    # A refund for an order not received yet is refused so that Shopify delivers it again
    refund_id = str(uuid.uuid4())
    early = deliver(api_client, committed_store, "refunds/create", load("refund"),
                    webhook_id=refund_id)  # fmt: skip
    assert early.status_code == 409
    assert early.headers["content-type"] == "application/problem+json"
    assert "not known yet" in early.json()["detail"]
    assert counts(engine, committed_store)["webhook_deliveries"] == 0

    # Once the order is in, Shopify's retry of the same delivery goes through
    deliver(api_client, committed_store, "orders/create", load("order"))
    retried = deliver(api_client, committed_store, "refunds/create", load("refund"),
                      webhook_id=refund_id)  # fmt: skip
    assert retried.status_code == 200 and retried.json()["status"] == "processed"
    order = stored_order(engine, committed_store)
    assert order.status == "partially_refunded"
    # 40.00 EUR refunded at the order's own rate (97.20 USD / 90.00 EUR)
    assert (order.refunded, order.refunded_base) == (Decimal("43.20"), Decimal("43.20"))

    # The rest is refunded: the order is refunded in full
    rest = load("refund")
    rest["id"] = 929361463
    rest["refund_line_items"][0]["line_item_id"] = 14215087521928
    rest["refund_line_items"][0]["quantity"] = 2
    rest["transactions"][0].update(id=6591237835, amount="50.00")
    rest["created_at"] = rest["processed_at"] = "2026-07-09T16:40:00+02:00"
    assert deliver(api_client, committed_store, "refunds/create", rest).status_code == 200
    order = stored_order(engine, committed_store)
    assert (order.status, order.refunded) == ("refunded", Decimal("97.20"))
    assert counts(engine, committed_store)["refunds"] == 2
    assert timeline(engine, order.id) == ["placed", "paid", "refunded", "refunded"]

    # orders/updated carrying the same refunds changes no money
    updated = load("order")
    updated["financial_status"] = "refunded"
    updated["updated_at"] = "2026-07-02T11:20:00+02:00"
    updated["refunds"] = [load("refund"), rest]
    assert deliver(api_client, committed_store, "orders/updated", updated).status_code == 200
    order = stored_order(engine, committed_store)
    assert (order.refunded, order.financial_status) == (Decimal("97.20"), "refunded")
    assert counts(engine, committed_store)["refunds"] == 2


def test_customer_updates_merge_into_the_same_customer(
    engine: Engine, committed_store: NewStore, api_client: TestClient
) -> None:
    created = load("customer")
    assert deliver(api_client, committed_store, "customers/create", created).json()["result"] \
        .endswith("created")  # fmt: skip

    update = load("customer")
    update["first_name"] = "Wei"
    update["last_name"] = "Li"
    update["email"] = "wei.li@example.com"  # a new address: the Shopify id still recognises her
    update["updated_at"] = "2026-06-01T12:00:00+08:00"
    update["email_marketing_consent"] = {
        "state": "unsubscribed", "opt_in_level": "confirmed_opt_in",
        "consent_updated_at": "2026-06-01T12:00:00+08:00",
    }  # fmt: skip
    response = deliver(api_client, committed_store, "customers/update", update)
    assert response.json()["result"].endswith("updated")
    legacy = deliver(api_client, committed_store, "customers/create", load("customer_legacy"))
    assert legacy.status_code == 200

    with session_scope(engine) as session:
        customers = session.scalars(
            select(Customer).where(Customer.store_id == committed_store.store.id)
            .order_by(Customer.id)
        ).all()  # fmt: skip
        assert len(customers) == 2
        li, sam = customers
        assert (li.first_name, li.last_name, li.email, li.phone) == (
            "Wei", "Li", "wei.li@example.com", "+8613800138000"
        )  # fmt: skip
        identities = {
            (kind, value) for kind, value in session.execute(
                select(CustomerIdentity.kind, CustomerIdentity.value)
                .where(CustomerIdentity.customer_id == li.id)
            )
        }  # fmt: skip
        assert ("shopify", "7412345678901") in identities
        assert ("email", "wei.li@example.com") in identities
        consents = {
            channel: status for channel, status in session.execute(
                select(Consent.channel, Consent.status).where(Consent.customer_id == li.id)
            )
        }  # fmt: skip
        assert consents == {"email": "unsubscribed", "sms": "subscribed"}
        assert (sam.email, sam.phone) == ("old.timer@example.com", "+14155550134")
        sam_consent = session.scalars(select(Consent).where(Consent.customer_id == sam.id)).one()
        assert sam_consent.status == "subscribed"


def test_checkout_becomes_an_event_linked_to_the_customer_by_email(
    engine: Engine, committed_store: NewStore, api_client: TestClient
) -> None:
    deliver(api_client, committed_store, "orders/create", load("order"))
    customer_id = stored_order(engine, committed_store).customer_id

    started = deliver(api_client, committed_store, "checkouts/create", load("checkout"))
    assert started.status_code == 200 and started.json()["status"] == "processed"
    again = deliver(api_client, committed_store, "checkouts/update", load("checkout"))
    assert again.json()["status"] == "processed"  # a new delivery of the same state: one event
    completed = load("checkout")
    completed["completed_at"] = "2026-07-10T21:09:02+02:00"
    completed["updated_at"] = "2026-07-10T21:09:03+02:00"
    assert deliver(api_client, committed_store, "checkouts/update", completed).status_code == 200

    with session_scope(engine) as session:
        events = session.scalars(
            select(Event).where(Event.store_id == committed_store.store.id)
            .order_by(Event.occurred_at)
        ).all()  # fmt: skip
    assert [(event.name, event.customer_id, event.source) for event in events] == [
        ("Checkout Started", customer_id, "shopify"),
        ("Checkout Completed", customer_id, "shopify"),
    ]
    started_event = events[0]
    assert started_event.message_id == (
        "shopify-checkout-4f0d9e8c7b6a5f4e3d2c1b0a99887766-2026-07-10T19:06:45+00:00"
    )
    assert started_event.properties["abandoned_checkout_url"].startswith("https://tea-house")
    assert started_event.properties["value"] == "132.00"
    assert started_event.properties["products"][0]["sku"] == "TEA-OOL-250"
    assert counts(engine, committed_store)["customers"] == 1


def test_broken_field_is_422_naming_it_and_the_retry_is_processed(
    engine: Engine, committed_store: NewStore, api_client: TestClient
) -> None:
    webhook_id = str(uuid.uuid4())
    broken = load("order")
    broken["total_price"] = "abc"
    response = deliver(api_client, committed_store, "orders/create", broken, webhook_id=webhook_id)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["field"] == "total_price"
    assert "total_price is not an amount: 'abc'" in problem["detail"]
    assert set(counts(engine, committed_store).values()) == {0}

    # Nothing was recorded, so the same delivery (fixed upstream) is processed when it comes again
    fixed = deliver(api_client, committed_store, "orders/create", load("order"),
                    webhook_id=webhook_id)  # fmt: skip
    assert fixed.status_code == 200 and fixed.json()["status"] == "processed"


def test_body_that_is_not_json_is_422(committed_store: NewStore, api_client: TestClient) -> None:
    response = deliver(api_client, committed_store, "orders/create", b"<xml/>")
    assert response.status_code == 422 and response.json()["field"] == "body"


def test_unknown_topic_is_accepted_and_recorded_as_ignored(
    engine: Engine, committed_store: NewStore, api_client: TestClient
) -> None:
    payload = {"id": 8123456789012, "title": "Oolong Tea"}
    response = deliver(api_client, committed_store, "products/update", payload)
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    with session_scope(engine) as session:
        delivery = session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.store_id == committed_store.store.id)
        ).one()
    assert (delivery.topic, delivery.result) == (
        "products/update", "ignored: topic products/update is not handled"
    )  # fmt: skip


def test_shop_currency_without_exchange_rate_is_422_until_one_is_added(
    engine: Engine, api_client: TestClient
) -> None:
    from patronage.stores.service import create_store

    with session_scope(engine) as session:
        euro_store = create_store(session, name="Euro books", base_currency="EUR")
    response = deliver(api_client, euro_store, "orders/create", load("order"))
    assert response.status_code == 422
    assert "no exchange rate from USD to EUR" in response.json()["detail"]


@pytest.mark.parametrize("webhook_id", [None, ""])
def test_delivery_without_webhook_id_is_deduplicated_by_content(
    engine: Engine, committed_store: NewStore, api_client: TestClient, webhook_id: str | None
) -> None:
    body = json.dumps(load("customer")).encode()
    headers = {
        "X-Shopify-Topic": "customers/create",
        "X-Shopify-Hmac-Sha256": sign(committed_store.webhook_secret, body),
    }
    if webhook_id is not None:
        headers["X-Shopify-Webhook-Id"] = webhook_id
    url = f"/v1/webhooks/shopify/{committed_store.store.id}"
    first = api_client.post(url, content=body, headers=headers)
    second = api_client.post(url, content=body, headers=headers)
    assert (first.json()["status"], second.json()["status"]) == ("processed", "duplicate")
    assert first.json()["delivery_id"].startswith("sha256:")
    assert counts(engine, committed_store)["webhook_deliveries"] == 1
