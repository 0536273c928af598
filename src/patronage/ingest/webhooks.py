"""Inbound Shopify webhooks: verify the signature, record the delivery once, dispatch by topic.

The delivery row and everything the delivery changes are written in the caller's one transaction:
a delivery that fails leaves no trace, so Shopify's retry processes it afresh, and a delivery that
succeeded is answered "duplicate" however often (or however concurrently) it arrives again.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from patronage.customers.schemas import CustomerIn
from patronage.customers.service import resolve_customer
from patronage.db.base import table_of
from patronage.db.conflicts import insert_ignoring_conflicts, retry_on_conflict
from patronage.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    ValidationFailedError,
)
from patronage.ingest import shopify_payloads
from patronage.ingest.models import WebhookDelivery
from patronage.kit.clock import utcnow
from patronage.kit.secrets import hmac_sha256_base64, signatures_match
from patronage.kit.times import parse_timestamp
from patronage.orders import repository as order_repository
from patronage.orders.schemas import OrderIn
from patronage.orders.service import record_refund, upsert_orders
from patronage.stores.models import Store
from patronage.stores.service import get_store, webhook_secret
from patronage.tracking.models import Event

PLATFORM = "shopify"
ORDER_TOPICS = frozenset(
    {
        "orders/create", "orders/updated", "orders/paid", "orders/fulfilled",
        "orders/partially_fulfilled", "orders/cancelled",
    }
)  # fmt: skip
CUSTOMER_TOPICS = frozenset({"customers/create", "customers/update"})
CHECKOUT_TOPICS = frozenset({"checkouts/create", "checkouts/update"})
REFUND_TOPICS = frozenset({"refunds/create"})
BAD_SIGNATURE = "the webhook signature is missing or does not match the store's webhook secret"
_DELIVERY_ID_LENGTH = 128
_TOPIC_LENGTH = 64
_RESULT_LENGTH = 200
_LARGEST_STORE_ID = 2**63 - 1

Handler = Callable[[Session, Store, str, Mapping[str, Any]], str]


@dataclass(frozen=True, slots=True)
class ShopifyDelivery:
    """One POST from Shopify: the headers that matter and the raw body the signature covers."""

    body: bytes
    topic: str | None = None
    signature: str | None = None
    webhook_id: str | None = None


@dataclass(frozen=True, slots=True)
class WebhookOutcome:
    """What became of a delivery: processed, duplicate (seen before) or ignored (topic unknown)."""

    status: str
    topic: str
    delivery_id: str
    result: str


def receive_shopify_webhook(
    session: Session, *, store_reference: str, delivery: ShopifyDelivery
) -> WebhookOutcome:
    """Verify, de-duplicate and process one Shopify delivery inside the caller's transaction."""
    store = verify_shopify_signature(
        session, store_reference=store_reference, body=delivery.body, signature=delivery.signature
    )
    topic = (delivery.topic or "").strip()[:_TOPIC_LENGTH]
    delivery_id = shopify_delivery_id(delivery)
    record = _claim_delivery(session, store.id, delivery_id, topic)
    if record is None:
        return WebhookOutcome("duplicate", topic, delivery_id, "already received")
    handler = _handler_for(topic)
    if handler is None:
        status, result = "ignored", f"topic {topic or '(none)'} is not handled"
    else:
        payload = _json_object(delivery.body)
        status = "processed"
        result = retry_on_conflict(session, lambda: handler(session, store, topic, payload))
    record.result = f"{status}: {result}"[:_RESULT_LENGTH]
    session.flush()
    return WebhookOutcome(status, topic, delivery_id, result)


def verify_shopify_signature(
    session: Session, *, store_reference: str, body: bytes, signature: str | None
) -> Store:
    """Return the store whose webhook secret signed `body`, or raise AuthenticationError.

    An unknown store and a wrong signature get the same error after the same work (an HMAC over
    the body), so the endpoint does not tell a prober which store ids exist.
    """
    store = _find_store(session, store_reference)
    secret = webhook_secret(store) if store is not None else secrets.token_urlsafe(32)
    expected = hmac_sha256_base64(secret, body)
    given = (signature or "").strip()
    if store is None or not given or not signatures_match(expected, given):
        raise AuthenticationError(BAD_SIGNATURE)
    return store


def shopify_delivery_id(delivery: ShopifyDelivery) -> str:
    """The de-duplication key: `X-Shopify-Webhook-Id`, else a digest of the topic and body."""
    webhook_id = (delivery.webhook_id or "").strip()
    if webhook_id and len(webhook_id) <= _DELIVERY_ID_LENGTH:
        return webhook_id
    digest = hashlib.sha256()
    digest.update((delivery.topic or "").encode())
    digest.update(b"\n")
    digest.update(webhook_id.encode() if webhook_id else delivery.body)
    return f"sha256:{digest.hexdigest()}"


def _find_store(session: Session, store_reference: str) -> Store | None:
    reference = store_reference.strip()
    if not reference.isascii() or not reference.isdigit():
        return None
    store_id = int(reference)
    if store_id > _LARGEST_STORE_ID:
        return None
    try:
        return get_store(session, store_id)
    except NotFoundError:
        return None


def _claim_delivery(
    session: Session, store_id: int, delivery_id: str, topic: str
) -> WebhookDelivery | None:
    """Insert the delivery row, or return None if this delivery was already received.

    On PostgreSQL a concurrent transaction holding the same (uncommitted) delivery makes this INSERT
    wait: if that one commits, ours fails on the unique key and is rolled back to the savepoint; if
    it rolls back, ours goes through and this delivery is processed here. SQLite writers are
    serialised, so there the row simply exists or not.
    """
    record = WebhookDelivery(
        store_id=store_id, platform=PLATFORM, delivery_id=delivery_id, topic=topic,
        received_at=utcnow(), result="processing",
    )  # fmt: skip
    try:
        with session.begin_nested():
            session.add(record)
            session.flush()
    except IntegrityError:
        return None
    return record


def _json_object(body: bytes) -> Mapping[str, Any]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValidationFailedError(f"the body is not JSON: {error}", field="body") from error
    if not isinstance(payload, dict):
        raise ValidationFailedError("the body is not a JSON object", field="body")
    return payload


def _handler_for(topic: str) -> Handler | None:
    if topic in ORDER_TOPICS:
        return _handle_order
    if topic in REFUND_TOPICS:
        return _handle_refund
    if topic in CUSTOMER_TOPICS:
        return _handle_customer
    if topic in CHECKOUT_TOPICS:
        return _handle_checkout
    return None


def _handle_order(session: Session, store: Store, topic: str, payload: Mapping[str, Any]) -> str:
    order = shopify_payloads.order_in(payload, topic=topic, base_currency=store.base_currency)
    _serialise_order(session, store.id, order.external_id)
    _resolve_buyer(session, store, order)
    held = order_repository.find_orders(session, store.id, PLATFORM, [order.external_id])
    known = held.get(order.external_id)
    if known is not None and _is_older(order, known):
        order = _timeline_of(order, known)
    summary = upsert_orders(session, store, [order])
    outcome = "created" if summary.created else "updated" if summary.updated else "unchanged"
    return f"order {summary.order_ids[0]} {outcome}"


def _serialise_order(session: Session, store_id: int, external_id: str) -> None:
    """Make deliveries of one order take turns until this transaction ends (PostgreSQL).

    A row lock cannot cover an order that does not exist yet: without this, a late orders/create
    could find nothing, then merge its older statuses over the order a concurrent orders/paid has
    just committed. SQLite writers are serialised by BEGIN IMMEDIATE already.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    digest = hashlib.blake2b(f"{PLATFORM}-order:{store_id}:{external_id}".encode(), digest_size=8)
    key = int.from_bytes(digest.digest(), "big", signed=True)
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def _resolve_buyer(session: Session, store: Store, order: OrderIn) -> None:
    """Record the buyer before the order row is locked, exactly as upsert_orders would.

    This keeps the lock order of every other writer of orders (customer row, then order row), so a
    webhook and, say, an import of the same order cannot deadlock; upsert_orders then finds the
    customer already up to date.
    """
    if order.customer is None and order.email:
        order.customer = CustomerIn(source=order.source, email=order.email)
    if order.customer is None:
        return
    if order.customer.seen_at is None:
        order.customer.seen_at = order.placed_at
    resolve_customer(session, store.id, order.customer)


def _is_older(order: OrderIn, held: Mapping[str, Any]) -> bool:
    """Whether this description of the order predates the one already stored.

    Shopify does not deliver in order: a late orders/create must not turn a paid, fulfilled order
    back into a pending one.
    """
    this_at = _moment(order.attributes.get(shopify_payloads.UPDATED_AT_ATTRIBUTE))
    held_at = _moment((held["attributes"] or {}).get(shopify_payloads.UPDATED_AT_ATTRIBUTE))
    return this_at is not None and held_at is not None and this_at < held_at


def _timeline_of(order: OrderIn, held: Mapping[str, Any]) -> OrderIn:
    """Keep only what an older description can still add: timeline steps and refunds."""
    return OrderIn(
        source=order.source, external_id=order.external_id, currency=held["currency"],
        placed_at=order.placed_at, total=held["total"], subtotal=held["subtotal"],
        discount=held["discount"], shipping=held["shipping"], tax=held["tax"],
        total_base=held["total_base"], paid_at=order.paid_at, shipped_at=order.shipped_at,
        delivered_at=order.delivered_at, cancelled_at=order.cancelled_at,
        returned_at=order.returned_at,
        carrier=None if held["carrier"] else order.carrier,
        tracking_number=None if held["tracking_number"] else order.tracking_number,
        refunds=order.refunds,
    )  # fmt: skip


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        return None


def _handle_refund(session: Session, store: Store, topic: str, payload: Mapping[str, Any]) -> str:
    """Record the refund on its order; an order not seen yet is a conflict Shopify will retry."""
    order_id = payload.get("order_id")
    if isinstance(order_id, bool) or not isinstance(order_id, int | str) or not str(order_id):
        raise ValidationFailedError(f"order_id is missing or not an id: {order_id!r}",
                                    field="order_id")  # fmt: skip
    external_id = str(order_id).strip()
    _serialise_order(session, store.id, external_id)
    held = order_repository.find_orders(session, store.id, PLATFORM, [external_id]).get(external_id)
    if held is None:
        raise ConflictError(
            f"order {external_id} is not known yet; the refund is not recorded and Shopify will "
            "deliver it again",
            order_id=external_id,
        )
    attributes = held["attributes"] or {}
    refund = shopify_payloads.refund_in(
        payload,
        order_currency=held["currency"],
        presentment_currency=attributes.get("presentment_currency"),
        presentment_to_shop=shopify_payloads.presentment_to_shop_ratio(
            held["total"], _decimal_or_none(attributes.get("presentment_total"))
        ),
    )
    order = record_refund(session, store, source=PLATFORM, order_external_id=external_id,
                          refund=refund)  # fmt: skip
    return f"refund {refund.external_id} on order {order.id}, now {order.status}"


def _handle_customer(session: Session, store: Store, topic: str, payload: Mapping[str, Any]) -> str:
    resolved = resolve_customer(session, store.id, shopify_payloads.customer_in(payload))
    outcome = "created" if resolved.created else "updated" if resolved.updated else "unchanged"
    return f"customer {resolved.customer_id} {outcome}"


def _handle_checkout(session: Session, store: Store, topic: str, payload: Mapping[str, Any]) -> str:
    checkout = shopify_payloads.checkout_in(payload)
    customer_id = None
    if checkout.customer is not None and checkout.customer.identity_keys():
        customer_id = resolve_customer(session, store.id, checkout.customer).customer_id
    row = {
        "store_id": store.id, "message_id": checkout.message_id, "type": "track",
        "name": checkout.name, "customer_id": customer_id,
        "user_id": checkout.shopify_customer_id, "anonymous_id": checkout.cart_token,
        "occurred_at": checkout.occurred_at, "received_at": utcnow(), "source": PLATFORM,
        "properties": checkout.properties, "context": {"topic": topic},
    }  # fmt: skip
    insert_ignoring_conflicts(session, table_of(Event), [row], keys=("store_id", "message_id"))
    return f"checkout {checkout.token}: {checkout.name}"


def _decimal_or_none(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None
