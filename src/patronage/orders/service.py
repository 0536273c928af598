"""Recording orders from any source: one batched, idempotent upsert that every door shares."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from patronage.customers import repository as customers_repository
from patronage.customers.schemas import CustomerIn
from patronage.customers.service import resolve_customers
from patronage.errors import NotFoundError, ValidationFailedError
from patronage.kit.clock import utcnow
from patronage.kit.money import is_currency_code, quantize
from patronage.orders import repository
from patronage.orders.fx import RateBook, load_rate_book
from patronage.orders.models import Order
from patronage.orders.schemas import ZERO, OrderIn, RefundIn, UpsertSummary
from patronage.stores.models import Store

_TIMESTAMPS = ("paid_at", "shipped_at", "delivered_at", "cancelled_at", "returned_at")
_MAX_PLACES = 4
_LARGEST = Decimal("1e13")
# Amounts already found acceptable, by their text (equal Decimals may differ in their places).
_good_amounts: set[str] = set()
_GOOD_AMOUNTS_SIZE = 65_536
# refresh_aggregates rebuilds the whole store when asked for at least this many customers making
# up at least this share of the store's.
_REBUILD_AT_LEAST = 2_000
_REBUILD_SHARE = 0.5


def validate_order(order: OrderIn) -> None:
    """Raise ValidationFailedError naming the field if the order cannot be recorded as given."""
    if not order.external_id:
        raise ValidationFailedError("order id is empty", field="external_id")
    if order.fingerprint is not None and not 0 < len(order.fingerprint) <= 32:
        raise ValidationFailedError("the fingerprint must have 1 to 32 characters", field="")
    if not is_currency_code(order.currency):
        raise ValidationFailedError(
            f"currency {order.currency!r} is not an ISO 4217 code", field="currency"
        )
    for index, line in enumerate(order.lines, start=1):
        if line.quantity < 0:
            raise ValidationFailedError(
                f"line {index} has a negative quantity", field=f"lines[{index}].quantity"
            )
    for field, amount in (
        ("total", order.total),
        ("subtotal", order.subtotal),
        ("discount", order.discount),
        ("shipping", order.shipping),
        ("tax", order.tax),
        ("total_base", order.total_base),
        ("refunded", order.refunded),
    ):
        if amount is not None:
            _check_amount(amount, field)
    # Field names of lines and refunds are only spelt out for the error.
    for index, line in enumerate(order.lines, start=1):
        _check_amount(line.unit_price, "lines[{}].unit_price", index)
        _check_amount(line.discount, "lines[{}].discount", index)
    for refund in order.refunds:
        _check_amount(refund.amount, "refund {}", refund.external_id)


def _check_amount(amount: Decimal, field: str, detail: object = None) -> None:
    """Raise ValidationFailedError if the amount is negative, too precise or implausibly large."""
    if amount < 0:
        problem = f"is negative: {amount}"
    else:
        text = str(amount)  # cheaper than as_tuple() for the plain notation of ordinary amounts
        if text in _good_amounts:
            return
        if "E" in text:
            exponent: int | str = amount.as_tuple().exponent
        else:
            point = text.find(".")
            exponent = 0 if point < 0 else point + 1 - len(text)
        if isinstance(exponent, int) and exponent < -_MAX_PLACES:
            problem = f"has more than {_MAX_PLACES} decimal places: {amount}"
        elif abs(amount) >= _LARGEST:
            problem = f"is implausibly large: {amount}"
        else:
            if len(_good_amounts) >= _GOOD_AMOUNTS_SIZE:
                _good_amounts.clear()
            _good_amounts.add(text)
            return
    name = field.format(detail) if detail is not None else field
    raise ValidationFailedError(f"{name} {problem}", field=name)


def upsert_orders(
    session: Session,
    store: Store,
    orders: Sequence[OrderIn],
    *,
    rate_book: RateBook | None = None,
    validated: bool = False,
    follow: bool = True,
) -> UpsertSummary:
    """Create or update orders keyed by (source, external id); a replay changes nothing.

    Timestamps merge (a late, older delivery never erases a later step), lines are replaced when the
    input has lines, refunds are added by their id, and the status is derived from the timeline.
    `validated=True` says the caller has already run validate_order on every order.
    `follow=False` leaves the loyalty points and kept aggregates of these orders to the caller,
    who then owes `sync_points_of_orders` and `refresh_aggregates` on `summary.order_ids` (a
    large import does that once at its end instead of after every chunk).
    """
    summary = UpsertSummary()
    if not orders:
        return summary
    if not validated:
        for order in orders:
            validate_order(order)
    book = rate_book or load_rate_book(session, store.id, store.base_currency)
    customer_ids = _resolve_order_customers(session, store.id, orders, summary)

    by_source: dict[str, list[int]] = {}
    for index, order in enumerate(orders):
        by_source.setdefault(order.source, []).append(index)
    order_ids: list[int] = [0] * len(orders)
    for source, indexes in by_source.items():
        _upsert_one_source(
            session,
            store,
            book,
            source,
            [orders[i] for i in indexes],
            [customer_ids[i] for i in indexes],
            summary,
            indexes,
            order_ids,
        )
    summary.order_ids = order_ids
    if follow:
        _after_orders_recorded(session, store, order_ids)
    return summary


def _after_orders_recorded(session: Session, store: Store, order_ids: list[int]) -> None:
    """Let the domains that follow orders catch up in the same transaction.

    Loyalty earns, activates or reverses the orders' points (nothing for a store without a
    program) and analytics refreshes the kept aggregates of the orders' customers.
    """
    from patronage.analytics.aggregates import refresh_customer_aggregates

    customer_ids = sync_points_of_orders(session, store, order_ids)
    refresh_customer_aggregates(session, store.id, customer_ids)
    _note_changed_customers(session, store.id, customer_ids)


_CHANGED = "patronage.orders.changed_customers"


def _note_changed_customers(session: Session, store_id: int, customer_ids: Iterable[int]) -> None:
    """Remember, until the transaction ends, whose orders it changed (their scores are stale)."""
    noted: dict[int, set[int]] = session.info.setdefault(_CHANGED, {})
    noted.setdefault(store_id, set()).update(customer_ids)


def take_changed_customers(session: Session) -> dict[int, set[int]]:
    """The customers whose orders the committed transaction changed, by store; forgets them."""
    taken: dict[int, set[int]] = session.info.pop(_CHANGED, {})
    return {store_id: ids for store_id, ids in taken.items() if ids}


def forget_changed_customers(session: Session) -> None:
    """Forget the noted customers of a rolled-back transaction."""
    session.info.pop(_CHANGED, None)


def sync_points_of_orders(session: Session, store: Store, order_ids: Sequence[int]) -> set[int]:
    """Bring the loyalty points of these orders up to date; return the orders' customers."""
    from patronage.loyalty.orders import sync_order_points

    sync_order_points(session, store, order_ids)
    return repository.customers_of_orders(session, store.id, order_ids)


def refresh_aggregates(session: Session, store: Store, customer_ids: Collection[int]) -> None:
    """Recompute the kept analytics aggregates of these customers, after a large change.

    When they are most of the store's customers, the whole store is rebuilt in one set-based
    pass (the same rows, for less work than refreshing them a thousand at a time).
    """
    from patronage.analytics.aggregates import refresh_customer_aggregates
    from patronage.analytics.service import rebuild_aggregates

    if len(customer_ids) >= _REBUILD_AT_LEAST and len(customer_ids) >= (
        _REBUILD_SHARE * customers_repository.count_live(session, store.id)
    ):
        rebuild_aggregates(session, store)
    else:
        refresh_customer_aggregates(session, store.id, customer_ids)
    _note_changed_customers(session, store.id, customer_ids)


def _resolve_order_customers(
    session: Session, store_id: int, orders: Sequence[OrderIn], summary: UpsertSummary
) -> list[int | None]:
    wanted: list[tuple[int, CustomerIn]] = []
    for index, order in enumerate(orders):
        customer = order.customer
        if customer is None and order.email:
            customer = CustomerIn(source=order.source, email=order.email.lower())
        if customer is not None:
            if customer.seen_at is None:
                customer.seen_at = order.placed_at
            wanted.append((index, customer))
    resolved = resolve_customers(session, store_id, [customer for _, customer in wanted])
    customer_ids: list[int | None] = [None] * len(orders)
    for (index, _), result in zip(wanted, resolved, strict=True):
        customer_ids[index] = result.customer_id
        summary.customers_created += result.created
    return customer_ids


def _fingerprint(order: OrderIn) -> str:
    # Not the customer id: a merge re-points the order to the survivor, and a replay must still
    # find the order unchanged (the id is compared with the stored one instead).
    return hashlib.blake2b(repr(order).encode(), digest_size=16).hexdigest()


def _upsert_one_source(
    session: Session,
    store: Store,
    book: RateBook,
    source: str,
    orders: list[OrderIn],
    customer_ids: list[int | None],
    summary: UpsertSummary,
    positions: list[int],
    order_ids: list[int],
) -> None:
    # The last description of an order in the batch wins.
    latest: dict[str, int] = {}
    for index, order in enumerate(orders):
        latest[order.external_id] = index
    states = repository.order_states(session, store.id, source, list(latest))
    now = utcnow()
    skus = {line.sku for order in orders for line in order.lines if line.sku}
    products = _ensure_products(session, store, orders, skus, now)

    changed: list[tuple[OrderIn, int | None, str, repository.OrderState | None]] = []
    for external_id, index in latest.items():
        order, customer_id = orders[index], customer_ids[index]
        fingerprint = order.fingerprint or _fingerprint(order)
        state = states.get(external_id)
        if (
            state is not None
            and state.content_hash == fingerprint
            and state.customer_id == customer_id
        ):
            summary.unchanged += 1
            continue
        changed.append((order, customer_id, fingerprint, state))
    held_ids = [state.id for _, _, _, state in changed if state is not None]
    held_rows = repository.orders_by_id(session, held_ids)
    refunds_held = repository.refund_totals(session, held_ids)

    new_rows: list[dict[str, Any]] = []
    new_orders: list[OrderIn] = []
    updated_rows: list[dict[str, Any]] = []
    updated_orders: list[OrderIn] = []
    no_refunds: tuple[Decimal, set[str]] = (ZERO, set())
    for order, customer_id, fingerprint, state in changed:
        held = held_rows[state.id] if state is not None else None
        held_refunds = refunds_held.get(state.id, no_refunds) if state is not None else no_refunds
        row = _order_row(store, book, order, customer_id, held, held_refunds, fingerprint, now)
        if held is None:
            new_rows.append(row)
            new_orders.append(order)
        else:
            row["id"] = held["id"]
            updated_rows.append(row)
            updated_orders.append(order)

    repository.insert_orders(session, new_rows)
    repository.update_orders(session, updated_rows)
    summary.created += len(new_rows)
    summary.updated += len(updated_rows)

    store_id = store.id
    line_rows: list[dict[str, Any]] = []
    new_change_rows: list[dict[str, Any]] = []
    new_refund_rows: list[dict[str, Any]] = []
    for row, order in zip(new_rows, new_orders, strict=True):
        line_rows.extend(_line_rows(store_id, row["id"], order, products))
        new_change_rows.extend(_first_of_each(_timeline_rows(store_id, row, order), _change_key))
        new_refund_rows.extend(_first_of_each(_refund_rows(store, row, order), _refund_key))
    replaced: list[int] = []
    replacing_rows: list[dict[str, Any]] = []
    change_rows: list[dict[str, Any]] = []
    refund_rows: list[dict[str, Any]] = []
    for row, order in zip(updated_rows, updated_orders, strict=True):
        if order.lines:
            replaced.append(row["id"])
            replacing_rows.extend(_line_rows(store_id, row["id"], order, products))
        change_rows.extend(_timeline_rows(store_id, row, order))
        refund_rows.extend(_refund_rows(store, row, order))
    repository.replace_lines(session, replaced, replacing_rows)
    repository.insert_lines(session, line_rows)
    # A new order has no stored steps or refunds: only repeats within its own input can clash.
    repository.insert_status_changes(session, new_change_rows)
    repository.add_status_changes(session, change_rows)
    repository.insert_refunds(session, new_refund_rows)
    repository.add_refunds(session, refund_rows)

    ids_by_external = {key: state.id for key, state in states.items()}
    ids_by_external.update({row["external_id"]: row["id"] for row in new_rows})
    for index, order in enumerate(orders):
        order_ids[positions[index]] = ids_by_external[order.external_id]


def _change_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["status"], row["occurred_at"])


def _refund_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["external_id"],)


def _first_of_each(
    rows: list[dict[str, Any]], key: Callable[[dict[str, Any]], tuple[Any, ...]]
) -> list[dict[str, Any]]:
    """The rows without later repeats of a key (what an insert skipping conflicts would keep)."""
    if len(rows) < 2:
        return rows
    seen: set[tuple[Any, ...]] = set()
    kept = []
    for row in rows:
        identity = key(row)
        if identity not in seen:
            seen.add(identity)
            kept.append(row)
    return kept


def _ensure_products(
    session: Session, store: Store, orders: list[OrderIn], skus: set[str], now: datetime
) -> dict[str, tuple[int, str | None]]:
    """Return products by SKU, adding to the catalog the SKUs first seen on these orders."""
    if not skus:
        return {}
    products = repository.products_by_sku(session, store.id, skus)
    missing = skus - products.keys()
    if missing:
        rows: dict[str, dict[str, Any]] = {}
        for order in orders:
            for line in order.lines:
                if line.sku in missing and line.sku not in rows:
                    rows[line.sku] = {
                        "store_id": store.id,
                        "sku": line.sku,
                        "title": line.title[:500],
                        "category": line.category,
                        "price": line.unit_price,
                        "currency": order.currency,
                        "created_at": now,
                        "updated_at": now,
                    }
        repository.insert_products(session, list(rows.values()))
        products.update(repository.products_by_sku(session, store.id, missing))
    return products


def _order_row(
    store: Store,
    book: RateBook,
    order: OrderIn,
    customer_id: int | None,
    held: dict[str, Any] | None,
    held_refunds: tuple[Decimal, set[str]],
    fingerprint: str,
    now: datetime,
) -> dict[str, Any]:
    base = store.base_currency
    if order.total_base is not None and order.total > 0:
        rate = (order.total_base / order.total).quantize(Decimal("1e-10"))
    else:
        rate = book.rate(order.currency, order.placed_at.date())
    subtotal = order.subtotal
    if subtotal is None:
        subtotal = (
            sum((line.total for line in order.lines), ZERO)
            if order.lines
            else order.total - order.shipping - order.tax + order.discount
        )
    held_refund_total, held_refund_ids = held_refunds
    new_refunds = sum(
        (refund.amount for refund in order.refunds if refund.external_id not in held_refund_ids),
        ZERO,
    )
    refunded = max(held_refund_total + new_refunds, order.refunded or ZERO)
    if held is not None:
        refunded = max(refunded, held["refunded"])
    refunded = min(refunded, order.total)
    total_base = order.total_base if order.total_base is not None else order.total * rate
    row: dict[str, Any] = {
        "store_id": store.id,
        "source": order.source,
        "external_id": order.external_id,
        "name": order.name,
        "customer_id": customer_id,
        "email": order.email,
        "market": order.market,
        "channel": order.channel,
        "currency": order.currency,
        "subtotal": subtotal,
        "discount": order.discount,
        "shipping": order.shipping,
        "tax": order.tax,
        "total": order.total,
        "refunded": refunded,
        "fx_rate": rate,
        "subtotal_base": quantize(subtotal * rate, base),
        "total_base": quantize(total_base, base),
        "refunded_base": quantize(refunded * rate, base),
        "financial_status": order.financial_status,
        "fulfillment_status": order.fulfillment_status,
        "placed_at": order.placed_at,
        "carrier": order.carrier,
        "tracking_number": order.tracking_number,
        "promised_delivery_date": order.promised_delivery_date,
        "discount_codes": order.discount_codes,
        "tags": order.tags,
        "attributes": order.attributes,
        "content_hash": fingerprint,
        "updated_at": now,
    }
    for field in _TIMESTAMPS:
        row[field] = getattr(order, field)
    if held is None:
        row["created_at"] = now
    else:
        _merge_with_held(row, held, order)
    row["status"] = derive_status(row)
    return row


def _merge_with_held(row: dict[str, Any], held: dict[str, Any], order: OrderIn) -> None:
    """Keep what the store already knew where this description is silent."""
    for field in _TIMESTAMPS:
        if row[field] is None:
            row[field] = held[field]
    for field in (
        "name",
        "customer_id",
        "email",
        "market",
        "channel",
        "carrier",
        "tracking_number",
        "promised_delivery_date",
        "financial_status",
        "fulfillment_status",
    ):
        if row[field] in (None, ""):
            row[field] = held[field]
    if not order.discount_codes:
        row["discount_codes"] = held["discount_codes"]
    if not order.tags:
        row["tags"] = held["tags"]
    row["attributes"] = {**(held["attributes"] or {}), **(order.attributes or {})}
    row["placed_at"] = min(row["placed_at"], held["placed_at"])


def derive_status(row: dict[str, Any]) -> str:
    """The order's current status, derived from its timeline and refunds."""
    total, refunded = row["total"], row["refunded"]
    if row["cancelled_at"] is not None:
        return "cancelled"
    if refunded > 0 and refunded >= total:
        return "returned" if row["returned_at"] is not None else "refunded"
    if row["returned_at"] is not None:
        return "returned"
    if refunded > 0:
        return "partially_refunded"
    for field, status in (
        ("delivered_at", "delivered"),
        ("shipped_at", "shipped"),
        ("paid_at", "paid"),
    ):
        if row[field] is not None:
            return status
    return "placed"


def _line_rows(
    store_id: int, order_id: int, order: OrderIn, products: dict[str, tuple[int, str | None]]
) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(order.lines, start=1):
        product = products.get(line.sku) if line.sku else None
        rows.append(
            {
                "store_id": store_id,
                "order_id": order_id,
                "line_number": number,
                "external_id": line.external_id,
                "product_id": product[0] if product else None,
                "sku": line.sku,
                "title": line.title[:500],
                "category": line.category or (product[1] if product else None),
                "quantity": line.quantity,
                "unit_price": line.unit_price,
                "discount": line.discount,
                "total": line.total,
                "refunded_quantity": line.refunded_quantity,
            }
        )
    return rows


_TIMELINE = (
    ("placed", "placed_at"),
    ("paid", "paid_at"),
    ("shipped", "shipped_at"),
    ("delivered", "delivered_at"),
    ("cancelled", "cancelled_at"),
    ("returned", "returned_at"),
)
_SHIPPING_DETAILS = ("carrier", "tracking_number", "promised_delivery_date")


def _timeline_rows(store_id: int, row: dict[str, Any], order: OrderIn) -> list[dict[str, Any]]:
    rows = []
    for status, field in _TIMELINE:
        moment = row[field]
        if moment is None:
            continue
        details: dict[str, Any] = {}
        if status == "shipped":
            details = {key: str(row[key]) for key in _SHIPPING_DETAILS if row[key] is not None}
        rows.append(
            {
                "store_id": store_id,
                "order_id": row["id"],
                "status": status,
                "occurred_at": moment,
                "details": details,
            }
        )
    for refund in order.refunds:
        rows.append(
            {
                "store_id": store_id,
                "order_id": row["id"],
                "status": "refunded",
                "occurred_at": refund.refunded_at,
                "details": {"refund": refund.external_id, "amount": str(refund.amount)},
            }
        )
    return rows


def _refund_rows(store: Store, row: dict[str, Any], order: OrderIn) -> list[dict[str, Any]]:
    rows = []
    for refund in order.refunds:
        amount_base = refund.amount_base
        if amount_base is None:
            amount_base = refund.amount * row["fx_rate"]
        rows.append(
            {
                "store_id": store.id,
                "order_id": row["id"],
                "external_id": refund.external_id,
                "amount": refund.amount,
                "amount_base": quantize(amount_base, store.base_currency),
                "currency": row["currency"],
                "refunded_at": refund.refunded_at,
                "reason": refund.reason,
                "lines": refund.lines,
                "restock": refund.restock,
            }
        )
    return rows


def record_refund(
    session: Session, store: Store, *, source: str, order_external_id: str, refund: RefundIn
) -> Order:
    """Add a refund to a known order (e.g. Shopify refunds/create); a replay changes nothing."""
    existing = repository.find_orders(session, store.id, source, [order_external_id])
    held = existing.get(order_external_id)
    if held is None:
        raise NotFoundError(f"order {order_external_id} from {source} is not known yet")
    order = OrderIn(
        source=source,
        external_id=order_external_id,
        currency=held["currency"],
        placed_at=held["placed_at"],
        total=held["total"],
        subtotal=held["subtotal"],
        discount=held["discount"],
        shipping=held["shipping"],
        tax=held["tax"],
        total_base=held["total_base"],
        refunds=[refund],
    )
    order.returned_at = refund.refunded_at if refund.restock else None
    upsert_orders(session, store, [order])
    found = repository.get_order(session, store.id, held["id"])
    assert found is not None
    return found
