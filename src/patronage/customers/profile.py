"""Assembling the customer 360 view from every domain that knows the customer."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from patronage.customers import repository
from patronage.customers.schemas import (
    ConsentOut,
    CustomerOut,
    EventOut,
    IdentityOut,
    MergeOut,
    OrderLineOut,
    OrderOut,
    RefundOut,
    TimelineStepOut,
    normalise_email,
)
from patronage.customers.service import get_customer
from patronage.errors import NotFoundError, ValidationFailedError
from patronage.orders import repository as order_repository
from patronage.orders.models import Order, OrderLine, OrderStatusChange, Refund
from patronage.tracking.models import Event


def customer_360(
    session: Session,
    store_id: int,
    customer_id: int,
    *,
    order_limit: int = 50,
    event_limit: int = 50,
) -> CustomerOut:
    """Return everything the store knows about one customer."""
    customer = get_customer(session, store_id, customer_id)
    orders = order_repository.orders_of_customer(session, store_id, customer.id, order_limit)
    order_ids = [order.id for order in orders]
    lines = order_repository.lines_of(session, order_ids)
    timelines = order_repository.timelines_of(session, order_ids)
    refunds = order_repository.refunds_of(session, order_ids)
    order_count = session.scalar(
        select(func.count()).where(Order.store_id == store_id, Order.customer_id == customer.id)
    )
    events = session.scalars(
        select(Event)
        .where(Event.store_id == store_id, Event.customer_id == customer.id)
        .order_by(Event.occurred_at.desc(), Event.id.desc())
        .limit(event_limit)
    ).all()
    from patronage.analytics.repository import scores_of_customer

    scores = scores_of_customer(session, store_id, customer.id)
    return CustomerOut(
        id=customer.id,
        store_id=customer.store_id,
        email=customer.email,
        phone=customer.phone,
        first_name=customer.first_name,
        last_name=customer.last_name,
        country=customer.country,
        language=customer.language,
        timezone=customer.timezone,
        currency=customer.currency,
        birthday=customer.birthday,
        tags=customer.tags or [],
        attributes=customer.attributes or {},
        created_at=customer.created_at,
        updated_at=customer.updated_at,
        first_seen_at=customer.first_seen_at,
        identities=[
            IdentityOut(kind=i.kind, value=i.value, source=i.source, created_at=i.created_at)
            for i in repository.identities_of(session, store_id, customer.id)
        ],
        consents=[
            ConsentOut(
                channel=c.channel, status=c.status, source=c.source, recorded_at=c.recorded_at
            )
            for c in repository.consents_of(session, store_id, customer.id)
        ],
        merged_from=[
            MergeOut(merged_id=m.merged_id, reason=m.reason, merged_at=m.merged_at)
            for m in repository.merges_into(session, store_id, customer.id)
        ],
        order_count=order_count or 0,
        orders=[_order_out(order, lines, timelines, refunds) for order in orders],
        events=[
            EventOut(
                message_id=e.message_id,
                type=e.type,
                name=e.name,
                occurred_at=e.occurred_at,
                properties=e.properties or {},
            )
            for e in events
        ],
        scores=scores,
    )


def find_customer_id_by_email(session: Session, store_id: int, email: str) -> int:
    """Return the id of the customer with this email, or raise NotFoundError."""
    try:
        normalised = normalise_email(email)
    except ValueError as error:
        raise ValidationFailedError(str(error), field="email") from error
    if normalised is None:
        raise ValidationFailedError("email is empty", field="email")
    customer = repository.find_by_email(session, store_id, normalised)
    if customer is None:
        raise NotFoundError(f"no customer with email {normalised}")
    return get_customer(session, store_id, customer.id).id


def _order_out(
    order: Order,
    lines: dict[int, list[OrderLine]],
    timelines: dict[int, list[OrderStatusChange]],
    refunds: dict[int, list[Refund]],
) -> OrderOut:
    return OrderOut(
        id=order.id,
        source=order.source,
        external_id=order.external_id,
        name=order.name,
        status=order.status,
        market=order.market,
        currency=order.currency,
        total=str(order.total),
        total_base=str(order.total_base),
        refunded=str(order.refunded),
        refunded_base=str(order.refunded_base),
        fx_rate=str(order.fx_rate.normalize()),
        placed_at=order.placed_at,
        paid_at=order.paid_at,
        shipped_at=order.shipped_at,
        delivered_at=order.delivered_at,
        cancelled_at=order.cancelled_at,
        carrier=order.carrier,
        tracking_number=order.tracking_number,
        promised_delivery_date=order.promised_delivery_date,
        lines=[
            OrderLineOut(
                sku=line.sku,
                title=line.title,
                category=line.category,
                quantity=line.quantity,
                unit_price=str(line.unit_price),
                total=str(line.total),
                refunded_quantity=line.refunded_quantity,
            )
            for line in lines.get(order.id, [])
        ],
        timeline=[
            TimelineStepOut(
                status=step.status, occurred_at=step.occurred_at, details=step.details or {}
            )
            for step in timelines.get(order.id, [])
        ],
        refunds=[
            RefundOut(
                external_id=r.external_id,
                amount=str(r.amount),
                amount_base=str(r.amount_base),
                refunded_at=r.refunded_at,
                reason=r.reason,
            )
            for r in refunds.get(order.id, [])
        ],
    )
