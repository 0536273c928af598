"""Shopify payloads map to canonical inputs: shop money, timeline, consent, refunds, checkouts."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from patronage.customers.schemas import ConsentIn
from patronage.errors import ValidationFailedError
from patronage.ingest.shopify_payloads import (
    checkout_in,
    customer_in,
    order_in,
    presentment_to_shop_ratio,
    refund_in,
)

FIXTURES = Path(__file__).parent / "fixtures" / "webhooks"
PLACED = datetime(2026, 6, 24, 17, 28, 34, tzinfo=UTC)


def load(name: str) -> dict[str, Any]:
    """Return a fixture payload (a fresh copy each time)."""
    payload: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return payload


def fulfilled(order: dict[str, Any]) -> dict[str, Any]:
    """The order after it shipped with DHL and was delivered."""
    changed = copy.deepcopy(order)
    changed["fulfillment_status"] = "fulfilled"
    changed["updated_at"] = "2026-06-28T14:02:10+02:00"
    changed["fulfillments"] = [
        {
            "id": 5001234567890, "order_id": order["id"], "status": "success",
            "created_at": "2026-06-25T09:15:00+02:00", "updated_at": "2026-06-28T14:02:10+02:00",
            "service": "manual", "shipment_status": "delivered",
            "tracking_company": "DHL Express", "tracking_number": "JD014600006281230704",
            "tracking_numbers": ["JD014600006281230704"],
            "tracking_url": "https://www.dhl.com/de-en/home/tracking.html?tracking-id=JD014600006281230704",
            "line_items": [],
        }
    ]  # fmt: skip
    return changed


def test_order_in_shop_money_with_presentment_kept() -> None:
    # Given an order paid in EUR on a shop that keeps its books in USD
    order = order_in(load("order"), topic="orders/create", base_currency="USD")

    # Then amounts are the shop's USD, the EUR side is kept, and no FX table is needed
    assert (order.source, order.external_id, order.name) == ("shopify", "5832610693256", "#1001")
    assert order.currency == "USD"
    assert (order.total, order.subtotal, order.discount) == (
        Decimal("97.20"), Decimal("86.40"), Decimal("9.60")
    )  # fmt: skip
    assert (order.shipping, order.tax) == (Decimal("10.80"), Decimal("15.52"))
    assert order.total_base == Decimal("97.20")
    assert order.attributes["presentment_currency"] == "EUR"
    assert order.attributes["presentment_total"] == "90.00"
    assert order.attributes["checkout_token"] == "b7c1e2f4a9d84c0e9f1a2b3c4d5e6f70"
    assert (order.market, order.channel) == ("DE", "web")
    assert order.discount_codes == ["WELCOME10"]
    assert order.tags == ["vip", "newsletter"]
    assert order.email == "ana.schmidt@example.de"


def test_order_in_timeline_from_the_document() -> None:
    order = order_in(load("order"), topic="orders/create", base_currency="USD")
    assert order.placed_at == PLACED
    assert order.financial_status == "paid" and order.paid_at == PLACED
    assert order.shipped_at is None and order.delivered_at is None and order.cancelled_at is None

    shipped = order_in(fulfilled(load("order")), topic="orders/fulfilled", base_currency="USD")
    assert shipped.shipped_at == datetime(2026, 6, 25, 7, 15, tzinfo=UTC)
    assert shipped.delivered_at == datetime(2026, 6, 28, 12, 2, 10, tzinfo=UTC)
    assert (shipped.carrier, shipped.tracking_number) == ("DHL Express", "JD014600006281230704")
    assert shipped.fulfillment_status == "fulfilled"


def test_pending_order_is_not_paid_until_the_paid_topic() -> None:
    payload = load("order")
    payload["financial_status"] = "pending"
    assert order_in(payload, topic="orders/create", base_currency="USD").paid_at is None
    payload["updated_at"] = "2026-06-26T08:00:00Z"
    paid = order_in(payload, topic="orders/paid", base_currency="USD")
    assert paid.paid_at == datetime(2026, 6, 26, 8, tzinfo=UTC)


def test_cancelled_order_has_its_time_and_reason() -> None:
    payload = load("order")
    payload["cancelled_at"] = "2026-06-24T20:00:00+02:00"
    payload["cancel_reason"] = "customer"
    order = order_in(payload, topic="orders/cancelled", base_currency="USD")
    assert order.cancelled_at == datetime(2026, 6, 24, 18, tzinfo=UTC)
    assert order.attributes["cancel_reason"] == "customer"


def test_order_lines_in_shop_money_with_discount_allocations() -> None:
    lines = order_in(load("order"), topic="orders/create", base_currency="USD").lines
    assert [(line.sku, line.title, line.quantity, line.unit_price, line.discount, line.total)
            for line in lines] == [
        ("TEA-OOL-100", "Oolong Tea - 100 g", 2, Decimal("24.00"), Decimal("4.80"),
         Decimal("43.20")),
        ("POT-CER-1", "Ceramic Teapot", 1, Decimal("48.00"), Decimal("4.80"), Decimal("43.20")),
    ]  # fmt: skip
    assert lines[0].external_id == "14215087521928"


def test_legacy_line_discount_without_allocations() -> None:
    payload = load("order")
    item = payload["line_items"][0]
    item["discount_allocations"] = []
    item["total_discount"] = "2.00"
    del item["total_discount_set"]
    line = order_in(payload, topic="orders/create", base_currency="USD").lines[0]
    assert line.discount == Decimal("2.00")


def test_base_amount_left_to_the_fx_table_when_the_shop_currency_differs() -> None:
    order = order_in(load("order"), topic="orders/create", base_currency="EUR")
    assert order.currency == "USD" and order.total_base is None


def test_order_customer_with_consent_objects() -> None:
    customer = order_in(load("order"), topic="orders/create", base_currency="USD").customer
    assert customer is not None
    assert customer.identities == [("shopify", "8509270720648")]
    assert (customer.email, customer.phone) == ("ana.schmidt@example.de", "+4915112345678")
    assert (customer.first_name, customer.last_name, customer.country) == ("Ana", "Schmidt", "DE")
    assert customer.language == "de-DE"
    # A never-changed "not subscribed" SMS state is no statement at all.
    assert customer.consents == {
        "email": ConsentIn("subscribed", "shopify", datetime(2026, 3, 1, 9, tzinfo=UTC))
    }


def test_order_refunds_convert_presentment_transactions_to_shop_money() -> None:
    payload = load("order")
    payload["financial_status"] = "partially_refunded"
    payload["refunds"] = [load("refund")]
    order = order_in(payload, topic="orders/updated", base_currency="USD")
    assert len(order.refunds) == 1
    refund = order.refunds[0]
    assert (refund.external_id, refund.amount) == ("929361462", Decimal("43.20"))
    assert refund.refunded_at == datetime(2026, 7, 2, 9, 15, tzinfo=UTC)
    assert refund.restock is False and order.returned_at is None
    assert refund.lines == [{"line_external_id": "14215087554696", "quantity": 1}]
    assert [line.refunded_quantity for line in order.lines] == [0, 1]
    assert order.paid_at == PLACED


def test_refund_in_shop_currency_needs_no_conversion() -> None:
    payload = load("refund")
    payload["transactions"][0].update(amount="43.20", currency="USD")
    payload["transactions"].append(
        {"id": 1, "kind": "refund", "status": "failure", "amount": "99.00", "currency": "USD"}
    )
    refund = refund_in(payload, order_currency="USD")
    assert refund.amount == Decimal("43.20")


def test_returned_goods_restock() -> None:
    payload = load("refund")
    payload["refund_line_items"][0]["restock_type"] = "return"
    ratio = presentment_to_shop_ratio(Decimal("97.20"), Decimal("90.00"))
    refund = refund_in(payload, order_currency="USD", presentment_currency="EUR",
                       presentment_to_shop=ratio)  # fmt: skip
    assert refund.restock is True and refund.amount == Decimal("43.20")


def test_refund_in_an_unknown_currency_is_refused() -> None:
    payload = load("refund")
    payload["transactions"][0]["currency"] = "GBP"
    with pytest.raises(ValidationFailedError) as raised:
        refund_in(payload, order_currency="USD", presentment_currency="EUR",
                  presentment_to_shop=Decimal("1.08"))  # fmt: skip
    assert raised.value.extra["field"] == "transactions[0].currency"


def test_customer_with_consent_objects() -> None:
    customer = customer_in(load("customer"))
    assert customer.identities == [("shopify", "7412345678901")]
    assert (customer.email, customer.phone, customer.country) == (
        "li.wei@example.com", "+8613800138000", "CN"
    )  # fmt: skip
    assert customer.tags == ["wholesale", "tea-club"]
    assert customer.currency == "USD"
    at = datetime(2026, 5, 12, 0, 41, 9, tzinfo=UTC)
    assert customer.consents == {
        "email": ConsentIn("subscribed", "shopify", at),
        "sms": ConsentIn("subscribed", "shopify", at),
    }
    assert customer.seen_at == at


def test_legacy_customer_with_accepts_marketing() -> None:
    customer = customer_in(load("customer_legacy"))
    assert customer.email == "old.timer@example.com"
    assert customer.phone == "+14155550134"  # national number read in the address's country
    assert customer.consents == {
        "email": ConsentIn("subscribed", "shopify", datetime(2021, 11, 3, 19, 20, 44, tzinfo=UTC))
    }
    assert customer.tags is None


def test_legacy_refusal_is_not_subscribed_only_when_dated() -> None:
    payload = load("customer_legacy")
    payload["accepts_marketing"] = False
    assert customer_in(payload).consents["email"].status == "not_subscribed"
    payload["accepts_marketing_updated_at"] = None
    assert customer_in(payload).consents == {}


def test_unusable_contact_details_are_dropped_not_fatal() -> None:
    payload = load("customer")
    payload["email"] = "not an email"
    payload["phone"] = "call me"
    customer = customer_in(payload)
    assert customer.email is None and customer.phone is None
    assert customer.identities == [("shopify", "7412345678901")]


def test_checkout_started_event() -> None:
    checkout = checkout_in(load("checkout"))
    assert checkout.name == "Checkout Started"
    assert checkout.message_id == (
        "shopify-checkout-4f0d9e8c7b6a5f4e3d2c1b0a99887766-2026-07-10T19:06:45+00:00"
    )
    assert checkout.occurred_at == datetime(2026, 7, 10, 19, 6, 45, tzinfo=UTC)
    assert checkout.customer is not None and checkout.customer.email == "ana.schmidt@example.de"
    properties = checkout.properties
    assert properties["abandoned_checkout_url"].endswith("/recover?key=6b2f1c9e")
    assert (properties["value"], properties["currency"], properties["shop_currency"]) == (
        "132.00", "EUR", "USD"
    )  # fmt: skip
    assert properties["products"] == [
        {"product_id": "8123456789012", "variant_id": "44012345678903", "sku": "TEA-OOL-250",
         "name": "Oolong Tea", "variant": "250 g", "price": "44.00", "quantity": 3}
    ]  # fmt: skip
    assert properties["completed"] is False
    json.dumps(properties)  # storable as a JSON document


def test_completed_checkout() -> None:
    payload = load("checkout")
    payload["completed_at"] = "2026-07-10T21:09:02+02:00"
    payload["updated_at"] = "2026-07-10T21:09:03+02:00"
    checkout = checkout_in(payload)
    assert checkout.name == "Checkout Completed"
    assert checkout.occurred_at == datetime(2026, 7, 10, 19, 9, 2, tzinfo=UTC)
    assert checkout.properties["completed"] is True


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("total_price",), "abc", "total_price"),
        (("total_price_set", "shop_money", "amount"), "9,7.2x",
         "total_price_set.shop_money.amount"),
        (("line_items", 1, "price_set", "shop_money", "amount"), "free",
         "line_items[1].price_set.shop_money.amount"),
        (("line_items", 0, "quantity"), "two", "line_items[0].quantity"),
        (("processed_at",), "yesterday", "processed_at"),
        (("id",), None, "id"),
        (("line_items",), {"not": "a list"}, "line_items"),
    ],
)  # fmt: skip
def test_broken_fields_are_named(path: tuple[Any, ...], value: Any, field: str) -> None:
    payload = load("order")
    target: Any = payload
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ValidationFailedError) as raised:
        order_in(payload, topic="orders/create", base_currency="USD")
    assert raised.value.extra["field"] == field
    assert field in raised.value.detail
