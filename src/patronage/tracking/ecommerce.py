"""Segment e-commerce spec v2: order events create, update, cancel and refund orders.

Every spec event is stored as an event like any other; the order events also reach the orders
domain through `upsert_orders` and `record_refund`. A bad order payload (a negative total, an
amount that is not a number) never fails its batch: the event is kept, the order change is
skipped, logged and counted.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from functools import partial
from typing import Any

from sqlalchemy.exc import IntegrityError, OperationalError, StatementError
from sqlalchemy.orm import Session

from patronage.customers.schemas import CustomerIn, normalise_email
from patronage.errors import PatronageError
from patronage.kit.money import parse_amount
from patronage.orders.schemas import ZERO, LineIn, OrderIn, RefundIn
from patronage.orders.service import record_refund, upsert_orders, validate_order
from patronage.stores.models import Store
from patronage.stores.service import get_store
from patronage.tracking import repository
from patronage.tracking.schemas import TRACKING_SOURCE, TrackingMessage

log = logging.getLogger(__name__)

ORDER_COMPLETED = "order completed"
ORDER_UPDATED = "order updated"
ORDER_REFUNDED = "order refunded"
ORDER_CANCELLED = "order cancelled"
ORDER_EVENTS = frozenset({ORDER_COMPLETED, ORDER_UPDATED, ORDER_REFUNDED, ORDER_CANCELLED})

# The spec v2 events, by canonical name (see `canonical_event_name`).
ECOMMERCE_EVENTS = frozenset({
    "products searched", "product list viewed", "product list filtered", "promotion viewed",
    "promotion clicked", "product clicked", "product viewed", "product added", "product removed",
    "cart viewed", "checkout started", "checkout step viewed", "checkout step completed",
    "payment info entered", "order updated", "order completed", "order refunded",
    "order cancelled", "coupon entered", "coupon applied", "coupon denied", "coupon removed",
    "product added to wishlist", "product removed from wishlist", "wishlist product added to cart",
    "product shared", "cart shared", "product reviewed",
})  # fmt: skip

_MAX_EXTERNAL_ID = 64  # orders.external_id, refunds.external_id
_MAX_SKU = 128
_MAX_CATEGORY = 200
_MAX_PLACES = Decimal("0.0001")
_MAX_PROBLEMS = 20


class CommercePayloadError(ValueError):
    """An order event whose properties cannot become an order change."""


@dataclass(slots=True)
class OrderEvent:
    """An order event with the customer it was linked to."""

    message: TrackingMessage
    customer: CustomerIn | None
    email: str | None


@dataclass
class CommerceSummary:
    """What the order events of one batch did to orders."""

    orders_written: int = 0
    refunds: int = 0
    cancellations: int = 0
    skipped: int = 0
    problems: list[str] = field(default_factory=list)

    def skip(self, message: TrackingMessage, reason: object) -> None:
        """Count an order change that could not be made, and say why."""
        self.skipped += 1
        text = f"{message.name} {message.message_id}: {reason}"
        log.warning("tracking: order change skipped (%s)", text)
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(text)


def canonical_event_name(name: str | None) -> str:
    """`Order Completed`, `order_completed` and `order completed` all read `order completed`."""
    return " ".join((name or "").replace("_", " ").lower().split())


def is_order_event(name: str | None) -> bool:
    """Whether the event changes an order (completed, updated, refunded, cancelled)."""
    return canonical_event_name(name) in ORDER_EVENTS


def order_email(message: TrackingMessage) -> str | None:
    """The buyer's email from the event's properties or its context traits, if any is valid."""
    traits = message.context.get("traits")
    candidates = [message.properties.get("email")]
    if isinstance(traits, dict):
        candidates.append(traits.get("email"))
    for candidate in candidates:
        if isinstance(candidate, str):
            try:
                email = normalise_email(candidate)
            except ValueError:
                continue
            if email:
                return email
    return None


# --- Mapping ----------------------------------------------------------------------------------


def order_external_id(properties: dict[str, Any]) -> str:
    """The order id of an order event; raise CommercePayloadError if it is missing or too long."""
    value = properties.get("order_id")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise CommercePayloadError("properties.order_id is missing")
    if len(value.strip()) > _MAX_EXTERNAL_ID:
        raise CommercePayloadError(f"order_id is longer than {_MAX_EXTERNAL_ID} characters")
    return value.strip()


def order_from_event(
    message: TrackingMessage,
    *,
    store_currency: str,
    held: dict[str, Any] | None,
    customer: CustomerIn | None = None,
    email: str | None = None,
) -> OrderIn:
    """Map `Order Completed` / `Order Updated` properties onto an OrderIn.

    An order the store already holds from another source keeps that source, so the tracking event
    updates it instead of creating a duplicate; an `Order Updated` that omits amounts keeps the
    stored ones.
    """
    properties = message.properties
    external_id = order_external_id(properties)
    completed = canonical_event_name(message.name) == ORDER_COMPLETED
    lines = _lines(properties.get("products"))
    shipping = _amount(properties.get("shipping"), "shipping")
    tax = _amount(properties.get("tax"), "tax")
    discount = _amount(properties.get("discount"), "discount")
    subtotal = _amount(properties.get("subtotal"), "subtotal")
    total = _amount(properties.get("total"), "total")
    if total is None:
        total = _amount(properties.get("revenue"), "revenue")
    if total is None and held is not None:
        total = held["total"]
        shipping = held["shipping"] if shipping is None else shipping
        tax = held["tax"] if tax is None else tax
        discount = held["discount"] if discount is None else discount
        subtotal = held["subtotal"] if subtotal is None and not lines else subtotal
    if total is None and lines:
        total = sum((line.total for line in lines), ZERO) + (shipping or ZERO) + (tax or ZERO)
        total -= discount or ZERO
    if total is None:
        raise CommercePayloadError("the order has no total, revenue or products")
    coupon = properties.get("coupon")
    attributes = {
        key: properties[key]
        for key in ("checkout_id", "affiliation")
        if isinstance(properties.get(key), str | int)
    }
    return OrderIn(
        source=held["source"] if held is not None else TRACKING_SOURCE,
        external_id=external_id,
        currency=_currency(properties.get("currency"), held, store_currency),
        placed_at=message.occurred_at,
        total=total,
        subtotal=subtotal,
        discount=discount or ZERO,
        shipping=shipping or ZERO,
        tax=tax or ZERO,
        customer=customer,
        email=email,
        paid_at=message.occurred_at if completed else None,
        discount_codes=[coupon.strip()] if isinstance(coupon, str) and coupon.strip() else [],
        attributes=attributes,
        lines=lines,
    )


def cancellation_from_event(message: TrackingMessage, *, held: dict[str, Any]) -> OrderIn:
    """The stored order, cancelled at the event's time."""
    order = stored_order(held)
    order.cancelled_at = message.occurred_at
    return order


def refund_from_event(message: TrackingMessage, *, held: dict[str, Any]) -> RefundIn:
    """Map `Order Refunded` onto a refund: total, else revenue, else its products, else the rest."""
    properties = message.properties
    amount = _amount(properties.get("total"), "total")
    if amount is None:
        amount = _amount(properties.get("revenue"), "revenue")
    if amount is None:
        lines = _lines(properties.get("products"))
        if lines:
            amount = sum((line.total for line in lines), ZERO)
    if amount is None:
        amount = held["total"] - held["refunded"]  # the spec: no amount means a full refund
    if amount <= 0:
        raise CommercePayloadError(f"refund amount must be positive, got {amount}")
    reason = properties.get("reason")
    return RefundIn(
        external_id=refund_external_id(message.message_id),
        amount=amount,
        refunded_at=message.occurred_at,
        reason=reason[:500] if isinstance(reason, str) else None,
    )


def refund_external_id(message_id: str) -> str:
    """A refund id derived from the event's message id, so that a replay adds nothing."""
    candidate = f"{TRACKING_SOURCE}:{message_id}"
    if len(candidate) <= _MAX_EXTERNAL_ID:
        return candidate
    return f"{TRACKING_SOURCE}:" + hashlib.blake2b(message_id.encode(), digest_size=16).hexdigest()


def stored_order(held: dict[str, Any]) -> OrderIn:
    """A stored order row as an OrderIn that changes nothing when upserted as it is."""
    return OrderIn(
        source=held["source"], external_id=held["external_id"], currency=held["currency"],
        placed_at=held["placed_at"], total=held["total"], subtotal=held["subtotal"],
        discount=held["discount"], shipping=held["shipping"], tax=held["tax"],
        total_base=held["total_base"],
    )  # fmt: skip


def _currency(value: Any, held: dict[str, Any] | None, store_currency: str) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip().upper()
    return str(held["currency"]) if held is not None else store_currency


def _amount(value: Any, name: str) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise CommercePayloadError(f"{name} is not a number: {value!r}")
    try:
        amount = parse_amount(value)
    except ValueError as error:
        raise CommercePayloadError(f"{name} is not a number: {value!r}") from error
    if amount is None:
        return None
    if not amount.is_finite():
        raise CommercePayloadError(f"{name} is not a number: {value!r}")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -4:
        # Browsers send floats (19.990000000000002); keep what the database can hold.
        amount = amount.quantize(_MAX_PLACES, rounding=ROUND_HALF_EVEN)
    return amount


def _quantity(value: Any) -> int:
    if value is None or value == "":
        return 1
    if isinstance(value, bool):
        raise CommercePayloadError(f"quantity is not a whole number: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise CommercePayloadError(f"quantity is not a whole number: {value!r}")


def _lines(products: Any) -> list[LineIn]:
    if products is None:
        return []
    if not isinstance(products, list):
        raise CommercePayloadError("products must be a list")
    lines = []
    for position, product in enumerate(products, start=1):
        if not isinstance(product, dict):
            raise CommercePayloadError(f"product {position} is not an object")
        sku = product.get("sku") or product.get("product_id")
        sku = str(sku).strip() if isinstance(sku, str | int) and not isinstance(sku, bool) else None
        if sku and len(sku) > _MAX_SKU:
            raise CommercePayloadError(f"product {position} has an SKU over {_MAX_SKU} characters")
        name = product.get("name")
        category = product.get("category")
        lines.append(
            LineIn(
                title=name.strip() if isinstance(name, str) and name.strip() else sku or "Product",
                quantity=_quantity(product.get("quantity")),
                unit_price=_amount(product.get("price"), f"products[{position}].price") or ZERO,
                sku=sku or None,
                category=category[:_MAX_CATEGORY] if isinstance(category, str) else None,
            )
        )
    return lines


# --- Applying order events ------------------------------------------------------------------------


def record_order_events(
    session: Session, store_id: int, events: Sequence[OrderEvent]
) -> CommerceSummary:
    """Create, update, cancel and refund orders from the order events of one batch.

    Placements and updates go first, through one `upsert_orders` call; then refunds (one
    `record_refund` each), then cancellations, so that both may follow a placement in the batch.
    Each group runs in a savepoint: if it fails, its changes are applied one by one so that only
    the bad ones are skipped.
    """
    summary = CommerceSummary()
    if not events:
        return summary
    store = get_store(session, store_id)
    external_ids: dict[int, str] = {}
    for index, event in enumerate(events):
        try:
            external_ids[index] = order_external_id(event.message.properties)
        except CommercePayloadError as error:
            summary.skip(event.message, error)
    held = repository.orders_by_external_id(session, store_id, external_ids.values())

    placements: dict[str, tuple[OrderEvent, OrderIn]] = {}
    later: list[tuple[OrderEvent, str]] = []
    for index, external_id in external_ids.items():
        event = events[index]
        kind = canonical_event_name(event.message.name)
        if kind not in (ORDER_COMPLETED, ORDER_UPDATED):
            later.append((event, external_id))
            continue
        earlier = placements.get(external_id)
        known = held.get(external_id)
        if known is None and earlier is not None:
            known = _described(earlier[1])  # an earlier event of the batch created it
        try:
            order = order_from_event(
                event.message, store_currency=store.base_currency, held=known,
                customer=event.customer, email=event.email,
            )  # fmt: skip
            validate_order(order)
        except (CommercePayloadError, PatronageError) as error:
            summary.skip(event.message, _reason(error))
            continue
        if earlier is not None:
            _carry_over(earlier[1], order)
        placements[external_id] = (event, order)
    summary.orders_written += _apply_upserts(session, store, list(placements.values()), summary)

    if later:
        held = repository.orders_by_external_id(
            session, store_id, [external_id for _, external_id in later]
        )
    cancellations: list[tuple[OrderEvent, OrderIn]] = []
    for event, external_id in later:
        order_held = held.get(external_id)
        if order_held is None:
            summary.skip(event.message, f"order {external_id} is not known")
            continue
        if canonical_event_name(event.message.name) == ORDER_CANCELLED:
            cancellations.append((event, cancellation_from_event(event.message, held=order_held)))
            continue
        try:
            refund = refund_from_event(event.message, held=order_held)
        except CommercePayloadError as error:
            summary.skip(event.message, error)
            continue
        source = str(order_held["source"])
        failure = _in_savepoint(
            session,
            partial(record_refund, session, store, source=source, order_external_id=external_id,
                    refund=refund),
        )  # fmt: skip
        if failure is None:
            summary.refunds += 1
        else:
            summary.skip(event.message, _reason(failure))
    summary.cancellations += _apply_upserts(session, store, cancellations, summary)
    return summary


def _described(order: OrderIn) -> dict[str, Any]:
    """An order not stored yet, in the shape of a stored row, for the events that follow it."""
    return {
        "source": order.source, "currency": order.currency, "total": order.total,
        "subtotal": order.subtotal, "shipping": order.shipping, "tax": order.tax,
        "discount": order.discount,
    }  # fmt: skip


def _carry_over(earlier: OrderIn, order: OrderIn) -> None:
    """Two descriptions of one order in a batch: the later keeps what only the earlier said."""
    order.paid_at = order.paid_at or earlier.paid_at
    order.placed_at = min(order.placed_at, earlier.placed_at)
    order.lines = order.lines or earlier.lines
    order.customer = order.customer or earlier.customer
    order.email = order.email or earlier.email
    order.discount_codes = order.discount_codes or earlier.discount_codes


def _apply_upserts(
    session: Session,
    store: Store,
    pairs: list[tuple[OrderEvent, OrderIn]],
    summary: CommerceSummary,
) -> int:
    """Upsert the orders together; if that fails, one by one, skipping the failures."""
    if not pairs:
        return 0
    orders = [order for _, order in pairs]
    if _in_savepoint(session, lambda: upsert_orders(session, store, orders)) is None:
        return len(pairs)
    applied = 0
    for event, order in pairs:
        failure = _in_savepoint(session, partial(upsert_orders, session, store, [order]))
        if failure is None:
            applied += 1
        else:
            summary.skip(event.message, _reason(failure))
    return applied


def _in_savepoint(session: Session, work: Callable[[], object]) -> Exception | None:
    """Run `work` in a savepoint; return the error that rolled it back, if any.

    Unique-key races and deadlocks are not swallowed: the whole request is retried for those.
    """
    try:
        with session.begin_nested():
            work()
    except (PatronageError, ValueError, StatementError) as error:
        if isinstance(error, IntegrityError | OperationalError):
            raise
        return error
    return None


def _reason(error: Exception) -> str:
    if isinstance(error, PatronageError):
        return error.detail
    if isinstance(error, StatementError) and error.orig is not None:
        return f"{type(error.orig).__name__}: {str(error.orig).splitlines()[0]}"
    return str(error)
