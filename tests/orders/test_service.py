"""Orders upsert idempotently, convert to the base currency by date and keep their timeline."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from patronage.errors import ValidationFailedError
from patronage.orders.fx import set_rate
from patronage.orders.models import Order, OrderLine, OrderStatusChange, Refund
from patronage.orders.schemas import LineIn, OrderIn, RefundIn
from patronage.orders.service import record_refund, upsert_orders
from patronage.stores.models import Store

PLACED = datetime(2026, 6, 24, 17, 28, 34, tzinfo=UTC)


def _order(**overrides: object) -> OrderIn:
    values: dict[str, object] = dict(
        source="shopify",
        external_id="5001",
        name="#1001",
        currency="EUR",
        placed_at=PLACED,
        total=Decimal("110.00"),
        shipping=Decimal("10.00"),
        email="ana@example.com",
        lines=[LineIn(title="Tea", quantity=2, unit_price=Decimal("50.00"), sku="TEA-1")],
    )
    values.update(overrides)
    return OrderIn(**values)  # type: ignore[arg-type]


@pytest.fixture
def euro_rates(session: Session, store: Store) -> None:
    set_rate(
        session,
        store.id,
        currency="EUR",
        rate_date=date(2026, 6, 1),
        rate=Decimal("1.10"),
        source="test",
    )
    set_rate(
        session,
        store.id,
        currency="EUR",
        rate_date=date(2026, 7, 1),
        rate=Decimal("1.20"),
        source="test",
    )


@pytest.mark.usefixtures("euro_rates")
def test_order_converts_with_the_rate_of_its_date(session: Session, store: Store) -> None:
    summary = upsert_orders(session, store, [_order()])
    order = session.get(Order, summary.order_ids[0])
    assert order is not None
    assert order.fx_rate == Decimal("1.10")
    assert order.total_base == Decimal("121.00")
    assert order.subtotal == Decimal("100.00") and order.subtotal_base == Decimal("110.00")
    later = upsert_orders(
        session, store, [_order(external_id="5002", placed_at=PLACED + timedelta(days=10))]
    )
    later_order = session.get(Order, later.order_ids[0])
    assert later_order is not None and later_order.total_base == Decimal("132.00")


@pytest.mark.usefixtures("euro_rates")
def test_replaying_an_order_changes_nothing(session: Session, store: Store) -> None:
    first = upsert_orders(session, store, [_order()])
    again = upsert_orders(session, store, [_order()])
    assert (first.created, again.created, again.updated, again.unchanged) == (1, 0, 0, 1)
    assert first.order_ids == again.order_ids
    assert len(session.scalars(select(OrderLine).where(OrderLine.store_id == store.id)).all()) == 1


@pytest.mark.usefixtures("euro_rates")
def test_timeline_only_grows_and_status_follows_it(session: Session, store: Store) -> None:
    shipped = PLACED + timedelta(days=2)
    upsert_orders(
        session,
        store,
        [
            _order(
                paid_at=PLACED,
                shipped_at=shipped,
                carrier="DHL",
                tracking_number="JD0001",
                promised_delivery_date=date(2026, 7, 15),
            )
        ],
    )
    # A late, older delivery of the same order says only "paid": nothing is lost.
    summary = upsert_orders(session, store, [_order(paid_at=PLACED)])
    order = session.get(Order, summary.order_ids[0])
    assert order is not None
    session.refresh(order)
    assert order.status == "shipped" and order.carrier == "DHL"
    steps = session.scalars(
        select(OrderStatusChange.status)
        .where(OrderStatusChange.order_id == order.id)
        .order_by(OrderStatusChange.occurred_at, OrderStatusChange.id)
    ).all()
    assert steps == ["placed", "paid", "shipped"]


@pytest.mark.usefixtures("euro_rates")
def test_partial_then_full_refund(session: Session, store: Store) -> None:
    summary = upsert_orders(session, store, [_order(paid_at=PLACED)])
    partial = RefundIn(
        external_id="r1", amount=Decimal("30.00"), refunded_at=PLACED + timedelta(days=20)
    )
    order = record_refund(
        session, store, source="shopify", order_external_id="5001", refund=partial
    )
    assert order.status == "partially_refunded" and order.refunded == Decimal("30.00")
    assert order.refunded_base == Decimal("33.00")
    record_refund(session, store, source="shopify", order_external_id="5001", refund=partial)
    rest = RefundIn(
        external_id="r2",
        amount=Decimal("80.00"),
        refunded_at=PLACED + timedelta(days=21),
        restock=True,
    )
    order = record_refund(session, store, source="shopify", order_external_id="5001", refund=rest)
    session.refresh(order)
    assert order.refunded == Decimal("110.00") and order.status == "returned"
    assert (
        len(session.scalars(select(Refund).where(Refund.order_id == summary.order_ids[0])).all())
        == 2
    )


def test_missing_rate_is_a_clear_error(session: Session, store: Store) -> None:
    with pytest.raises(ValidationFailedError, match="no exchange rate from EUR to USD"):
        upsert_orders(session, store, [_order()])


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"currency": "euro"}, "currency"),
        ({"total": Decimal("-1")}, "total"),
        ({"shipping": Decimal("1.00001")}, "shipping"),
    ],
)
def test_invalid_orders_name_the_field(
    session: Session, store: Store, overrides: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationFailedError) as raised:
        upsert_orders(session, store, [_order(**overrides)])
    assert raised.value.extra["field"] == field


@pytest.mark.usefixtures("euro_rates")
def test_new_skus_enter_the_catalog(session: Session, store: Store) -> None:
    from patronage.catalog.models import Product

    upsert_orders(session, store, [_order()])
    product = session.scalars(select(Product).where(Product.store_id == store.id)).one()
    assert (product.sku, product.title, product.price) == ("TEA-1", "Tea", Decimal("50.00"))
