"""Mapping e-commerce spec v2 order events onto orders and refunds (no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from patronage.customers.schemas import CustomerIn
from patronage.errors import ValidationFailedError
from patronage.orders.service import validate_order
from patronage.tracking.ecommerce import (
    CommercePayloadError,
    cancellation_from_event,
    canonical_event_name,
    is_order_event,
    order_email,
    order_from_event,
    refund_external_id,
    refund_from_event,
)
from patronage.tracking.schemas import TrackingMessage

AT = datetime(2026, 6, 24, 17, 28, 34, tzinfo=UTC)


def _event(name: str, properties: dict[str, Any], **fields: Any) -> TrackingMessage:
    values: dict[str, Any] = dict(
        message_id="m-1",
        type="track",
        user_id="u-1",
        anonymous_id=None,
        name=name,
        properties=properties,
        context={},
        occurred_at=AT,
        received_at=AT,
    )
    values.update(fields)
    return TrackingMessage(**values)


def _held(**fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict(
        source="shopify",
        external_id="1001",
        currency="EUR",
        placed_at=AT,
        total=Decimal("50"),
        subtotal=Decimal("45"),
        discount=Decimal("0"),
        shipping=Decimal("5"),
        tax=Decimal("0"),
        total_base=Decimal("55"),
        refunded=Decimal("10"),
    )
    row.update(fields)
    return row


ORDER_COMPLETED = {
    "checkout_id": "c-9",
    "order_id": "50314b8e",
    "affiliation": "Web",
    "total": 27.5,
    "revenue": 25.0,
    "shipping": 3,
    "tax": "2.00",
    "discount": 2.5,
    "coupon": "hasbros",
    "currency": "usd",
    "products": [
        {
            "product_id": "507f1f77",
            "sku": "45790-32",
            "name": "Monopoly",
            "price": 19,
            "quantity": 1,
            "category": "Games",
        },
        {"product_id": "505bd76785", "name": "Uno Card Game", "price": 3.25, "quantity": 2.0},
    ],
}


def test_order_names_are_recognised_in_any_spelling() -> None:
    assert canonical_event_name("Order_Completed") == "order completed"
    assert is_order_event("order  refunded") and is_order_event("ORDER CANCELLED")
    assert not is_order_event("Product Viewed") and not is_order_event(None)


def test_order_completed_maps_onto_a_paid_tracking_order() -> None:
    customer = CustomerIn(source="tracking", identities=[("user_id", "u-1")])
    order = order_from_event(
        _event("Order Completed", ORDER_COMPLETED),
        store_currency="EUR",
        held=None,
        customer=customer,
        email="ana@example.com",
    )
    assert (order.source, order.external_id, order.currency) == ("tracking", "50314b8e", "USD")
    assert order.total == Decimal("27.5") and order.subtotal is None
    assert (order.shipping, order.tax, order.discount) == (
        Decimal(3),
        Decimal("2.00"),
        Decimal("2.5"),
    )
    assert order.discount_codes == ["hasbros"]
    assert order.placed_at == AT and order.paid_at == AT
    assert order.customer is customer and order.email == "ana@example.com"
    assert order.attributes == {"checkout_id": "c-9", "affiliation": "Web"}
    assert [
        (line.sku, line.title, line.category, line.unit_price, line.quantity)
        for line in order.lines
    ] == [
        ("45790-32", "Monopoly", "Games", Decimal(19), 1),
        ("505bd76785", "Uno Card Game", None, Decimal("3.25"), 2),
    ]
    validate_order(order)


def test_revenue_stands_in_for_a_missing_total_and_products_for_both() -> None:
    with_revenue = order_from_event(
        _event("Order Completed", {"order_id": "1", "revenue": "12.00"}),
        store_currency="EUR",
        held=None,
    )
    assert with_revenue.total == Decimal("12.00") and with_revenue.currency == "EUR"
    from_products = order_from_event(
        _event(
            "Order Completed",
            {
                "order_id": "1",
                "shipping": 4,
                "products": [{"sku": "A", "price": 10, "quantity": 3}],
            },
        ),
        store_currency="EUR",
        held=None,
    )
    assert from_products.total == Decimal(34)


def test_an_order_held_from_another_source_keeps_that_source_and_currency() -> None:
    order = order_from_event(
        _event("Order Updated", {"order_id": "1001", "total": 60}),
        store_currency="USD",
        held=_held(),
    )
    assert (order.source, order.currency, order.total) == ("shopify", "EUR", Decimal(60))
    assert order.paid_at is None  # only Order Completed says it was paid


def test_order_updated_without_amounts_keeps_the_stored_ones() -> None:
    order = order_from_event(
        _event("Order Updated", {"order_id": "1001", "coupon": "X"}),
        store_currency="USD",
        held=_held(),
    )
    assert (order.total, order.subtotal, order.shipping) == (Decimal(50), Decimal(45), Decimal(5))
    assert order.discount_codes == ["X"]


def test_browser_floats_are_rounded_to_what_the_database_holds() -> None:
    order = order_from_event(
        _event("Order Completed", {"order_id": "1", "total": 0.1 + 0.2}),
        store_currency="USD",
        held=None,
    )
    assert order.total == Decimal("0.3000")


@pytest.mark.parametrize(
    ("properties", "reason"),
    [
        ({"total": 5}, "order_id is missing"),
        ({"order_id": "x" * 65, "total": 5}, "longer than 64"),
        ({"order_id": "1"}, "no total"),
        ({"order_id": "1", "total": "lots"}, "total is not a number"),
        ({"order_id": "1", "total": True}, "total is not a number"),
        ({"order_id": "1", "total": 5, "products": {"sku": "A"}}, "products must be a list"),
        ({"order_id": "1", "total": 5, "products": ["A"]}, "product 1 is not an object"),
        ({"order_id": "1", "total": 5, "products": [{"quantity": 1.5}]}, "whole number"),
        ({"order_id": "1", "total": 5, "products": [{"sku": "s" * 129}]}, "SKU over 128"),
    ],
)
def test_bad_order_payloads_raise_a_payload_error(properties: dict[str, Any], reason: str) -> None:
    with pytest.raises(CommercePayloadError, match=reason):
        order_from_event(_event("Order Completed", properties), store_currency="USD", held=None)


def test_a_negative_total_is_left_to_the_order_validation() -> None:
    order = order_from_event(
        _event("Order Completed", {"order_id": "1", "total": -5}), store_currency="USD", held=None
    )
    with pytest.raises(ValidationFailedError, match="negative"):
        validate_order(order)


def test_refund_amount_from_total_revenue_products_or_what_is_left() -> None:
    held = _held()
    assert refund_from_event(_event("Order Refunded", {"total": 7}), held=held).amount == 7
    assert refund_from_event(_event("Order Refunded", {"revenue": "6.5"}), held=held).amount == (
        Decimal("6.5")
    )
    products = {"products": [{"sku": "A", "price": 4, "quantity": 2}]}
    assert refund_from_event(_event("Order Refunded", products), held=held).amount == 8
    full = refund_from_event(_event("Order Refunded", {"reason": "damaged"}), held=held)
    assert full.amount == Decimal(40) and full.reason == "damaged"  # total 50 less 10 refunded
    assert full.external_id == "tracking:m-1" and full.refunded_at == AT
    with pytest.raises(CommercePayloadError, match="positive"):
        refund_from_event(_event("Order Refunded", {"total": 0}), held=held)


def test_refund_ids_fit_the_column_whatever_the_message_id() -> None:
    assert refund_external_id("abc") == "tracking:abc"
    long_id = refund_external_id("m" * 128)
    assert len(long_id) <= 64 and long_id == refund_external_id("m" * 128)


def test_cancellation_is_the_stored_order_with_a_cancellation_time() -> None:
    order = cancellation_from_event(_event("Order Cancelled", {"order_id": "1001"}), held=_held())
    assert (order.source, order.total, order.total_base) == ("shopify", Decimal(50), Decimal(55))
    assert order.cancelled_at == AT and order.lines == []


def test_order_email_comes_from_properties_or_context_traits() -> None:
    assert order_email(_event("Order Completed", {"email": "A@B.com"})) == "a@b.com"
    in_context = _event("Order Completed", {}, context={"traits": {"email": "c@d.org"}})
    assert order_email(in_context) == "c@d.org"
    assert order_email(_event("Order Completed", {"email": "nope"})) is None
