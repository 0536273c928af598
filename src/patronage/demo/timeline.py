"""An order's whole simulated life, and the order as a store would have known it at any moment.

The simulation plays each order forward to the end (paid, shipped, delivered, returned,
refunded); the demo store replays history by writing each order again whenever its state as of
the next step of the replay has changed, so that points are pending, activate, and reverse at the
times they would have.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from patronage.orders.schemas import OrderIn, RefundIn


@dataclass(slots=True)
class Timeline:
    """Every step of an order, including those after the as-of moment."""

    paid: datetime | None
    shipped: datetime | None
    delivered: datetime | None
    cancelled: datetime | None
    returned: datetime | None
    refunds: list[RefundIn]
    refunded_quantities: list[int]
    carrier: str | None
    tracking_number: str | None

    def moments(self, placed: datetime) -> list[datetime]:
        """Every moment at which the order's state changes."""
        steps = [placed, self.paid, self.shipped, self.delivered, self.cancelled, self.returned]
        steps += [refund.refunded_at for refund in self.refunds]
        return sorted(moment for moment in steps if moment is not None)


def timeline_of(
    order: OrderIn,
    *,
    paid: datetime | None,
    shipped: datetime | None,
    delivered: datetime | None,
    cancelled: datetime | None,
    refunds: list[RefundIn],
) -> Timeline:
    """Capture an order's whole life before it is cut at any moment."""
    return Timeline(
        paid=paid,
        shipped=shipped,
        delivered=delivered,
        cancelled=cancelled,
        returned=order.returned_at,
        refunds=list(refunds),
        refunded_quantities=[line.refunded_quantity for line in order.lines],
        carrier=order.carrier,
        tracking_number=order.tracking_number,
    )


def cut_at(order: OrderIn, timeline: Timeline, now: datetime) -> None:
    """Keep only what happened before `now`: later steps are unknown, recent orders unpaid or
    still in transit. Changes `order` in place (its lines too; refunds are new objects)."""

    def past(moment: datetime | None) -> datetime | None:
        return moment.replace(microsecond=0) if moment is not None and moment < now else None

    order.paid_at, order.shipped_at = past(timeline.paid), past(timeline.shipped)
    order.delivered_at, order.cancelled_at = past(timeline.delivered), past(timeline.cancelled)
    order.returned_at = past(timeline.returned)
    order.refunds = [
        replace(refund, refunded_at=refund.refunded_at.replace(microsecond=0))
        for refund in timeline.refunds
        if refund.refunded_at < now
    ]
    for line, quantity in zip(order.lines, timeline.refunded_quantities, strict=True):
        line.refunded_quantity = quantity if order.returned_at is not None else 0
    refunded = sum((refund.amount for refund in order.refunds), Decimal(0))
    if order.cancelled_at is not None and order.paid_at is None:
        order.financial_status = "voided"
    elif order.paid_at is None:
        order.financial_status = "pending"
    elif refunded >= order.total:
        order.financial_status = "refunded"
    elif refunded > 0:
        order.financial_status = "partially_refunded"
    else:
        order.financial_status = "paid"
    order.fulfillment_status = "fulfilled" if order.shipped_at is not None else None
    if order.shipped_at is None:
        order.carrier = order.tracking_number = None
    else:
        order.carrier, order.tracking_number = timeline.carrier, timeline.tracking_number


def order_at(order: OrderIn, timeline: Timeline, now: datetime) -> OrderIn:
    """A copy of the order as it stood at `now`."""
    copy = replace(
        order,
        lines=[replace(line) for line in order.lines],
        tags=list(order.tags),
        attributes=dict(order.attributes),
        discount_codes=list(order.discount_codes),
    )
    cut_at(copy, timeline, now)
    return copy
