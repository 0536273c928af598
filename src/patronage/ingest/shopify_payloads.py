"""Shopify webhook payloads mapped to Patronage's canonical inputs; pure functions, no database.

Every broken field raises ValidationFailedError naming its path in the payload (for example
`line_items[0].price_set.shop_money.amount`), so a delivery is rejected whole and Shopify retries
it. Contact details are the exception: an email or phone number that cannot be used is dropped,
because no retry can repair it and the order it comes with is still worth recording.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from patronage.customers.schemas import ConsentIn, CustomerIn, normalise_email
from patronage.errors import ValidationFailedError
from patronage.kit.money import is_currency_code, parse_amount, quantize
from patronage.kit.phones import to_e164
from patronage.kit.times import parse_timestamp
from patronage.orders.schemas import ZERO, LineIn, OrderIn, RefundIn

SOURCE = "shopify"
PAID_STATUSES = frozenset({"paid", "partially_refunded", "refunded"})
CONSENT_STATES = frozenset({"subscribed", "unsubscribed", "not_subscribed", "pending", "redacted"})
SHIPPED_FULFILLMENT_STATUSES = frozenset({"success"})
RESTOCKING_TYPES = frozenset({"return", "legacy_restock"})
UPDATED_AT_ATTRIBUTE = "shopify_updated_at"
_MESSAGE_ID_LENGTH = 128

T = TypeVar("T")

Payload = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class CheckoutIn:
    """A checkout as a behavioural event: started (abandoned until completed) or completed."""

    message_id: str
    name: str
    token: str
    occurred_at: datetime
    customer: CustomerIn | None
    shopify_customer_id: str | None
    cart_token: str | None
    completed_at: datetime | None
    properties: dict[str, Any] = field(default_factory=dict)


# --- Orders -------------------------------------------------------------------------------------


def order_in(payload: Payload, *, topic: str, base_currency: str) -> OrderIn:
    """Map an orders/* payload to an OrderIn in the shop currency (amounts from `shop_money`)."""
    external_id = _identifier(payload.get("id"), "id")
    shop_currency = _currency(payload, "total_price", "shop_money") or _text(
        payload.get("currency")
    )
    if not shop_currency:
        raise ValidationFailedError("the order has no currency", field="currency")
    shop_currency = shop_currency.upper()
    presentment_currency = _currency(payload, "total_price", "presentment_money") or _text(
        payload.get("presentment_currency")
    )
    total = _required(_shop_amount(payload, "total_price"), "total_price")
    presentment_total = _money(payload, "total_price", "presentment_money")
    created_at = _timestamp(payload.get("created_at"), "created_at")
    processed_at = _timestamp(payload.get("processed_at"), "processed_at")
    placed_at = _required(processed_at or created_at, "created_at")
    updated_at = _timestamp(payload.get("updated_at"), "updated_at")
    financial_status = _text(payload.get("financial_status"))

    refunds = _order_refunds(payload, shop_currency, presentment_currency, presentment_total, total)
    refunded_quantities = _refunded_quantities(payload)
    fulfillment = _fulfillment_summary(payload)
    region = _order_region(payload)

    attributes: dict[str, Any] = {}
    if presentment_currency:
        attributes["presentment_currency"] = presentment_currency.upper()
    if presentment_total is not None:
        attributes["presentment_total"] = str(presentment_total)
    if updated_at is not None:
        attributes[UPDATED_AT_ATTRIBUTE] = updated_at.isoformat()
    for key in ("order_number", "checkout_token", "cart_token", "cancel_reason", "customer_locale"):
        value = payload.get(key)
        if value not in (None, ""):
            attributes[key] = value if isinstance(value, int | str) else str(value)

    customer = _order_customer(payload, region)
    shipping = _shop_amount(payload, "total_shipping_price")
    if shipping is None:
        shipping = _shipping_lines_total(payload)
    restocked = [refund.refunded_at for refund in refunds if refund.restock]
    return OrderIn(
        source=SOURCE,
        external_id=external_id,
        currency=shop_currency,
        placed_at=placed_at,
        total=total,
        subtotal=_shop_amount(payload, "subtotal_price"),
        discount=_shop_amount(payload, "total_discounts") or ZERO,
        shipping=shipping,
        tax=_shop_amount(payload, "total_tax") or ZERO,
        name=_clip(_text(payload.get("name")), 64),
        customer=customer,
        email=_usable_email(payload.get("email") or payload.get("contact_email")),
        market=region,
        channel=_clip(_text(payload.get("source_name")), 64),
        financial_status=financial_status,
        fulfillment_status=_text(payload.get("fulfillment_status")),
        paid_at=_paid_at(topic, financial_status, placed_at, updated_at),
        shipped_at=fulfillment.shipped_at,
        delivered_at=fulfillment.delivered_at,
        cancelled_at=_timestamp(payload.get("cancelled_at"), "cancelled_at"),
        returned_at=min(restocked) if restocked else None,
        carrier=fulfillment.carrier,
        tracking_number=_clip(fulfillment.tracking_number, 128),
        discount_codes=_discount_codes(payload),
        tags=_tags(payload.get("tags")),
        attributes=attributes,
        lines=_lines(payload, refunded_quantities),
        refunds=refunds,
        total_base=total if shop_currency == base_currency.upper() else None,
    )


def _paid_at(
    topic: str, financial_status: str | None, placed_at: datetime, updated_at: datetime | None
) -> datetime | None:
    """When the order was paid, derived from the document alone so every delivery agrees.

    Shopify's order payload carries no payment time. Paid orders count as paid when processed;
    an orders/paid delivery whose status is not (yet) a paid one falls back to the order's
    `updated_at`, the time of the payment event.
    """
    if financial_status in PAID_STATUSES:
        return placed_at
    if topic == "orders/paid":
        return updated_at or placed_at
    return None


def _lines(payload: Payload, refunded_quantities: dict[str, int]) -> list[LineIn]:
    lines = []
    for index, item in enumerate(_list(payload.get("line_items"), "line_items")):
        path = f"line_items[{index}]"
        item = _object(item, path)
        external_id = _text(item.get("id"))
        allocations = _list(item.get("discount_allocations"), f"{path}.discount_allocations")
        if allocations:
            discount = sum(
                (
                    _shop_amount(_object(allocation, f"{path}.discount_allocations[{number}]"),
                                 "amount", f"{path}.discount_allocations[{number}].") or ZERO
                    for number, allocation in enumerate(allocations)
                ),
                ZERO,
            )  # fmt: skip
        else:
            discount = _shop_amount(item, "total_discount", f"{path}.") or ZERO
        title = _text(item.get("name")) or _text(item.get("title")) or _text(item.get("sku"))
        lines.append(
            LineIn(
                title=title or f"line item {external_id or index + 1}",
                quantity=_integer(item.get("quantity"), f"{path}.quantity"),
                unit_price=_required(_shop_amount(item, "price", f"{path}."), f"{path}.price"),
                sku=_clip(_text(item.get("sku")), 128),
                external_id=external_id,
                discount=discount,
                refunded_quantity=refunded_quantities.get(external_id or "", 0),
            )
        )
    return lines


def _order_refunds(
    payload: Payload,
    shop_currency: str,
    presentment_currency: str | None,
    presentment_total: Decimal | None,
    total: Decimal,
) -> list[RefundIn]:
    ratio = presentment_to_shop_ratio(total, presentment_total)
    return [
        refund_in(
            _object(refund, f"refunds[{index}]"),
            order_currency=shop_currency,
            presentment_currency=presentment_currency,
            presentment_to_shop=ratio,
            path=f"refunds[{index}].",
        )
        for index, refund in enumerate(_list(payload.get("refunds"), "refunds"))
    ]


def _refunded_quantities(payload: Payload) -> dict[str, int]:
    quantities: dict[str, int] = {}
    for index, refund in enumerate(_list(payload.get("refunds"), "refunds")):
        path = f"refunds[{index}].refund_line_items"
        for number, item in enumerate(_list(_object(refund, path).get("refund_line_items"), path)):
            item = _object(item, f"{path}[{number}]")
            line_id = _text(item.get("line_item_id"))
            if line_id:
                quantity = _integer(item.get("quantity"), f"{path}[{number}].quantity")
                quantities[line_id] = quantities.get(line_id, 0) + quantity
    return quantities


@dataclass(slots=True)
class _Fulfillment:
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None
    carrier: str | None = None
    tracking_number: str | None = None


def _fulfillment_summary(payload: Payload) -> _Fulfillment:
    """Shipped when the first successful fulfillment was created; delivered when all were."""
    shipped: list[tuple[datetime, Payload]] = []
    delivered: list[datetime] = []
    for index, item in enumerate(_list(payload.get("fulfillments"), "fulfillments")):
        path = f"fulfillments[{index}]"
        item = _object(item, path)
        status = _text(item.get("status"))
        if status is not None and status not in SHIPPED_FULFILLMENT_STATUSES:
            continue
        created_at = _required(_timestamp(item.get("created_at"), f"{path}.created_at"),
                               f"{path}.created_at")  # fmt: skip
        shipped.append((created_at, item))
        if item.get("shipment_status") == "delivered":
            updated_at = _timestamp(item.get("updated_at"), f"{path}.updated_at")
            delivered.append(updated_at or created_at)
    if not shipped:
        return _Fulfillment()
    first_at, first = min(shipped, key=lambda pair: pair[0])
    numbers = first.get("tracking_numbers")
    tracking_number = _text(first.get("tracking_number"))
    if tracking_number is None and isinstance(numbers, list) and numbers:
        tracking_number = _text(numbers[0])
    return _Fulfillment(
        shipped_at=first_at,
        delivered_at=max(delivered) if len(delivered) == len(shipped) else None,
        carrier=_clip(_text(first.get("tracking_company")), 64),
        tracking_number=tracking_number,
    )


def _shipping_lines_total(payload: Payload) -> Decimal:
    total = ZERO
    for index, line in enumerate(_list(payload.get("shipping_lines"), "shipping_lines")):
        path = f"shipping_lines[{index}]."
        total += _shop_amount(_object(line, path[:-1]), "price", path) or ZERO
    return total


def _discount_codes(payload: Payload) -> list[str]:
    codes = []
    for index, item in enumerate(_list(payload.get("discount_codes"), "discount_codes")):
        code = _text(_object(item, f"discount_codes[{index}]").get("code"))
        if code:
            codes.append(code)
    return codes


def _order_region(payload: Payload) -> str | None:
    for key in ("shipping_address", "billing_address"):
        country = _text(_object(payload.get(key), key).get("country_code"))
        if country:
            return country.upper()[:2]
    customer = _object(payload.get("customer"), "customer")
    default = _object(customer.get("default_address"), "customer.default_address")
    country = _text(default.get("country_code"))
    return country.upper()[:2] if country else None


def _order_customer(payload: Payload, region: str | None) -> CustomerIn | None:
    raw = payload.get("customer")
    if not raw:
        return None
    customer = customer_in(_object(raw, "customer"), default_region=region, path="customer.")
    if customer.email is None:
        customer.email = _usable_email(payload.get("email") or payload.get("contact_email"))
    if customer.language is None:
        customer.language = _clip(_text(payload.get("customer_locale")), 16)
    return customer


# --- Refunds ------------------------------------------------------------------------------------


def presentment_to_shop_ratio(
    shop_total: Decimal | None, presentment_total: Decimal | None
) -> Decimal | None:
    """Shop-currency units per presentment-currency unit, from the order's two totals."""
    if shop_total is None or presentment_total is None or presentment_total <= 0:
        return None
    return shop_total / presentment_total


def refund_in(
    payload: Payload,
    *,
    order_currency: str,
    presentment_currency: str | None = None,
    presentment_to_shop: Decimal | None = None,
    path: str = "",
) -> RefundIn:
    """Map a refund (refunds/create, or one of an order's `refunds[]`) to a RefundIn in shop money.

    The amount is the sum of the successful transactions of kind `refund`. Shopify states those in
    the currency the customer paid in; presentment amounts are converted with the order's own ratio
    of shop total to presentment total.
    """
    external_id = _identifier(payload.get("id"), f"{path}id")
    refunded_at = _timestamp(payload.get("processed_at"), f"{path}processed_at") or _timestamp(
        payload.get("created_at"), f"{path}created_at"
    )
    amount = ZERO
    transactions_path = f"{path}transactions"
    for index, raw in enumerate(_list(payload.get("transactions"), transactions_path)):
        transaction_path = f"{transactions_path}[{index}]"
        transaction = _object(raw, transaction_path)
        succeeded = transaction.get("status") in (None, "success")
        if transaction.get("kind") != "refund" or not succeeded:
            continue
        amount += _transaction_in_shop_money(
            transaction, transaction_path, order_currency, presentment_currency, presentment_to_shop
        )
    lines = []
    restock_types = []
    items_path = f"{path}refund_line_items"
    for index, raw in enumerate(_list(payload.get("refund_line_items"), items_path)):
        item = _object(raw, f"{items_path}[{index}]")
        restock_type = _text(item.get("restock_type"))
        if restock_type:
            restock_types.append(restock_type)
        lines.append(
            {
                "line_external_id": _text(item.get("line_item_id")),
                "quantity": _integer(item.get("quantity"), f"{items_path}[{index}].quantity"),
            }
        )
    if restock_types:
        restock = any(kind in RESTOCKING_TYPES for kind in restock_types)
    else:
        restock = payload.get("restock") is True
    return RefundIn(
        external_id=external_id,
        amount=quantize(amount, order_currency),
        refunded_at=_required(refunded_at, f"{path}created_at"),
        reason=_text(payload.get("note")),
        lines=lines,
        restock=restock,
    )


def _transaction_in_shop_money(
    transaction: Payload,
    path: str,
    order_currency: str,
    presentment_currency: str | None,
    presentment_to_shop: Decimal | None,
) -> Decimal:
    in_shop_money = _money(transaction, "amount", "shop_money", f"{path}.")
    if in_shop_money is not None:
        return in_shop_money
    amount = _required(_amount(transaction.get("amount"), f"{path}.amount"), f"{path}.amount")
    currency = (_text(transaction.get("currency")) or order_currency).upper()
    if currency == order_currency:
        return amount
    if presentment_currency and currency == presentment_currency.upper() and presentment_to_shop:
        return amount * presentment_to_shop
    raise ValidationFailedError(
        f"{path}.currency {currency} is neither the shop currency {order_currency} nor a "
        "presentment currency with a known rate",
        field=f"{path}.currency",
    )


# --- Customers ----------------------------------------------------------------------------------


def customer_in(
    payload: Payload, *, default_region: str | None = None, path: str = ""
) -> CustomerIn:
    """Map a customers/* payload (or an order's `customer{}`) to a CustomerIn with its consent."""
    customer_id = _identifier(payload.get("id"), f"{path}id")
    default_address = _object(payload.get("default_address"), f"{path}default_address")
    country = _text(default_address.get("country_code"))
    region = country or default_region
    currency = (_text(payload.get("currency")) or "").upper()
    seen_at = _timestamp(payload.get("created_at"), f"{path}created_at")
    updated_at = _timestamp(payload.get("updated_at"), f"{path}updated_at") or seen_at
    return CustomerIn(
        source=SOURCE,
        email=_usable_email(payload.get("email")),
        phone=_usable_phone(payload.get("phone"), region),
        first_name=_clip(_text(payload.get("first_name")), 200),
        last_name=_clip(_text(payload.get("last_name")), 200),
        country=country.upper()[:2] if country else None,
        currency=currency if is_currency_code(currency) else None,
        tags=_tags(payload.get("tags")) or None,
        identities=[(SOURCE, customer_id)],
        consents=_consents(payload, updated_at, path),
        seen_at=seen_at,
    )


def _consents(payload: Payload, updated_at: datetime | None, path: str) -> dict[str, ConsentIn]:
    consents: dict[str, ConsentIn] = {}
    for key, channel in (("email_marketing_consent", "email"), ("sms_marketing_consent", "sms")):
        raw = payload.get(key)
        if raw is None:
            continue
        consent = _object(raw, f"{path}{key}")
        state = _text(consent.get("state"))
        recorded_at = _timestamp(consent.get("consent_updated_at"),
                                 f"{path}{key}.consent_updated_at")  # fmt: skip
        if state not in CONSENT_STATES:
            continue  # e.g. "invalid" (an SMS number that cannot receive messages): no statement
        if recorded_at is None:
            # Never changed: "not subscribed" says nothing; any other state dates from the profile.
            if state == "not_subscribed" or updated_at is None:
                continue
            recorded_at = updated_at
        consents[channel] = ConsentIn(state, SOURCE, recorded_at)
    if "email" not in consents and "email_marketing_consent" not in payload:
        legacy = _legacy_email_consent(payload, updated_at, path)
        if legacy is not None:
            consents["email"] = legacy
    return consents


def _legacy_email_consent(
    payload: Payload, updated_at: datetime | None, path: str
) -> ConsentIn | None:
    """Older payloads: `accepts_marketing` with `accepts_marketing_updated_at`.

    True is a subscription. False cannot tell "never subscribed" from "withdrew"; when dated it is
    recorded as not subscribed (both block marketing), undated it is no statement at all.
    """
    accepts = payload.get("accepts_marketing")
    if not isinstance(accepts, bool):
        return None
    changed_at = _timestamp(payload.get("accepts_marketing_updated_at"),
                            f"{path}accepts_marketing_updated_at")  # fmt: skip
    if accepts:
        recorded_at = changed_at or updated_at
        return ConsentIn("subscribed", SOURCE, recorded_at) if recorded_at else None
    return ConsentIn("not_subscribed", SOURCE, changed_at) if changed_at else None


# --- Checkouts ----------------------------------------------------------------------------------


def checkout_in(payload: Payload) -> CheckoutIn:
    """Map a checkouts/* payload to a "Checkout Started" event ("Checkout Completed" once done)."""
    token = _text(payload.get("token"))
    if not token:
        raise ValidationFailedError("the checkout has no token", field="token")
    created_at = _timestamp(payload.get("created_at"), "created_at")
    updated_at = _required(_timestamp(payload.get("updated_at"), "updated_at") or created_at,
                           "updated_at")  # fmt: skip
    completed_at = _timestamp(payload.get("completed_at"), "completed_at")
    shop_currency = (_text(payload.get("currency")) or "").upper() or None
    currency = (_text(payload.get("presentment_currency")) or shop_currency or "").upper() or None
    email = _usable_email(payload.get("email"))
    region = _order_region(payload)
    customer: CustomerIn | None = None
    shopify_customer_id: str | None = None
    raw_customer = payload.get("customer")
    if raw_customer:
        customer = customer_in(_object(raw_customer, "customer"), default_region=region,
                               path="customer.")  # fmt: skip
        shopify_customer_id = customer.identities[0][1]
        if customer.email is None:
            customer.email = email
    elif email:
        customer = CustomerIn(source=SOURCE, email=email, seen_at=created_at or updated_at)

    products = []
    for index, raw in enumerate(_list(payload.get("line_items"), "line_items")):
        path = f"line_items[{index}]"
        item = _object(raw, path)
        price = _amount(item.get("price"), f"{path}.price")
        products.append(
            {
                "product_id": _text(item.get("product_id")),
                "variant_id": _text(item.get("variant_id")),
                "sku": _text(item.get("sku")),
                "name": _text(item.get("title")),
                "variant": _text(item.get("variant_title")),
                "price": str(price) if price is not None else None,
                "quantity": _integer(item.get("quantity"), f"{path}.quantity"),
            }
        )
    codes = _discount_codes(payload)
    amounts = {
        key: _amount(payload.get(field_name), field_name)
        for key, field_name in (("value", "total_price"), ("subtotal", "subtotal_price"),
                                ("tax", "total_tax"), ("discount", "total_discounts"))
    }  # fmt: skip
    properties: dict[str, Any] = {
        "checkout_id": token,
        "cart_token": _text(payload.get("cart_token")),
        "abandoned_checkout_url": _text(payload.get("abandoned_checkout_url")),
        "currency": currency,
        "shop_currency": shop_currency,
        **{key: str(value) for key, value in amounts.items() if value is not None},
        "coupon": codes[0] if codes else None,
        "discount_codes": codes,
        "products": products,
        "email": email,
        "buyer_accepts_marketing": payload.get("buyer_accepts_marketing") is True,
        "completed": completed_at is not None,
        "completed_at": completed_at.isoformat() if completed_at else None,
    }
    return CheckoutIn(
        message_id=_checkout_message_id(token, updated_at),
        name="Checkout Completed" if completed_at else "Checkout Started",
        token=token,
        occurred_at=completed_at or updated_at,
        customer=customer,
        shopify_customer_id=shopify_customer_id,
        cart_token=_text(payload.get("cart_token")),
        completed_at=completed_at,
        properties=properties,
    )


def _checkout_message_id(token: str, updated_at: datetime) -> str:
    message_id = f"shopify-checkout-{token}-{updated_at.isoformat()}"
    if len(message_id) > _MESSAGE_ID_LENGTH:
        digest = hashlib.sha256(message_id.encode()).hexdigest()
        message_id = f"shopify-checkout-{digest}"
    return message_id


# --- Field readers ------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, bool | dict | list):
        return None
    cleaned = str(value).strip()
    return cleaned or None


def _clip(value: str | None, length: int) -> str | None:
    """Cut free text to the column's width (Shopify allows longer SKUs, names and carriers)."""
    return value[:length] if value is not None else None


def _identifier(value: Any, path: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip():
        raise ValidationFailedError(f"{path} is missing or not an id: {value!r}", field=path)
    identifier = str(value).strip()
    if len(identifier) > 64:
        raise ValidationFailedError(f"{path} is longer than 64 characters", field=path)
    return identifier


def _amount(value: Any, path: str) -> Decimal | None:
    if isinstance(value, bool) or not (value is None or isinstance(value, str | int | float)):
        raise ValidationFailedError(f"{path} is not an amount: {value!r}", field=path)
    try:
        return parse_amount(value)
    except ValueError as error:
        raise ValidationFailedError(f"{path} is not an amount: {value!r}", field=path) from error


def _money(document: Payload, name: str, side: str, path: str = "") -> Decimal | None:
    """Read `<name>_set.<side>.amount` (side: shop_money or presentment_money)."""
    money_set = _object(document.get(f"{name}_set"), f"{path}{name}_set")
    money = _object(money_set.get(side), f"{path}{name}_set.{side}")
    return _amount(money.get("amount"), f"{path}{name}_set.{side}.amount")


def _currency(document: Payload, name: str, side: str) -> str | None:
    money_set = _object(document.get(f"{name}_set"), f"{name}_set")
    return _text(_object(money_set.get(side), f"{name}_set.{side}").get("currency_code"))


def _shop_amount(document: Payload, name: str, path: str = "") -> Decimal | None:
    """The shop-currency amount: `<name>_set.shop_money.amount`, else the plain `<name>`.

    Both are read, so a broken value in either is reported rather than silently skipped.
    """
    plain = _amount(document.get(name), f"{path}{name}")
    in_shop_money = _money(document, name, "shop_money", path)
    return in_shop_money if in_shop_money is not None else plain


def _timestamp(value: Any, path: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationFailedError(f"{path} is not a timestamp: {value!r}", field=path)
    try:
        return parse_timestamp(value)
    except ValueError as error:
        raise ValidationFailedError(f"{path} is not a timestamp: {value!r}", field=path) from error


def _integer(value: Any, path: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise ValidationFailedError(f"{path} is not a whole number: {value!r}", field=path)


def _object(value: Any, path: str) -> Payload:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationFailedError(f"{path} is not an object", field=path)
    return value


def _list(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValidationFailedError(f"{path} is not a list", field=path)
    return value


def _required(value: T | None, path: str) -> T:
    if value is None:
        raise ValidationFailedError(f"{path} is missing", field=path)
    return value


def _tags(value: Any) -> list[str]:
    if isinstance(value, list):
        return [tag for tag in (_text(item) for item in value) if tag]
    text = _text(value)
    if not text:
        return []
    return [tag.strip() for tag in text.split(",") if tag.strip()]


def _usable_email(value: Any) -> str | None:
    try:
        return normalise_email(_text(value))
    except ValueError:
        return None


def _usable_phone(value: Any, region: str | None) -> str | None:
    try:
        return to_e164(_text(value), region)
    except ValueError:
        return None
