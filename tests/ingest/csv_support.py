"""Helpers for the CSV importer tests: fixture files, exchange rates, reading back what landed."""

from __future__ import annotations

import csv
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from patronage.customers.models import Consent, Customer, CustomerIdentity
from patronage.db.session import session_scope
from patronage.orders.fx import set_rate
from patronage.orders.models import Order, OrderLine

FIXTURES = Path(__file__).parent / "fixtures"
RATES = {"EUR": Decimal("1.08"), "INR": Decimal("0.012"), "GBP": Decimal("1.27")}


def set_rates(engine: Engine, store_id: int) -> None:
    """Give the store the exchange rates the fixture files need (not XYZ)."""
    with session_scope(engine) as session:
        for currency, rate in RATES.items():
            set_rate(session, store_id, currency=currency, rate_date=date(2019, 1, 1), rate=rate,
                     source="test")  # fmt: skip


def read_report(path: str | Path) -> list[dict[str, str]]:
    """The rows of a report CSV."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def orders_by_name(engine: Engine, store_id: int) -> dict[str, dict[str, Any]]:
    """Every order of the store by name, with its lines (by line number) under "lines"."""
    with session_scope(engine) as session:
        orders = session.scalars(select(Order).where(Order.store_id == store_id)).all()
        lines = session.scalars(
            select(OrderLine).where(OrderLine.store_id == store_id).order_by(OrderLine.line_number)
        ).all()
        found: dict[str, dict[str, Any]] = {}
        by_id: dict[int, dict[str, Any]] = {}
        for order in orders:
            row = {column.name: getattr(order, column.name) for column in Order.__table__.c}
            row["lines"] = []
            found[order.name or order.external_id] = by_id[order.id] = row
        for line in lines:
            by_id[line.order_id]["lines"].append(
                {column.name: getattr(line, column.name) for column in OrderLine.__table__.c}
            )
    return found


def customer_by_identity(engine: Engine, store_id: int, kind: str, value: str) -> dict[str, Any]:
    """A customer (profile, identities, consents by channel) found by one of its identities."""
    with session_scope(engine) as session:
        customer_id = session.scalar(
            select(CustomerIdentity.customer_id).where(
                CustomerIdentity.store_id == store_id, CustomerIdentity.kind == kind,
                CustomerIdentity.value == value,
            )
        )  # fmt: skip
        assert customer_id is not None, f"no customer with {kind} {value}"
        customer = session.get(Customer, customer_id)
        assert customer is not None
        profile = {column.name: getattr(customer, column.name) for column in Customer.__table__.c}
        profile["identities"] = {
            (identity.kind, identity.value)
            for identity in session.scalars(
                select(CustomerIdentity).where(CustomerIdentity.customer_id == customer_id)
            )
        }
        profile["consents"] = {
            consent.channel: consent
            for consent in session.scalars(
                select(Consent).where(Consent.customer_id == customer_id)
            )
        }
    return profile


def count_customers(engine: Engine, store_id: int) -> int:
    """How many customers the store has (merged-away ones included)."""
    with session_scope(engine) as session:
        return len(session.scalars(select(Customer.id).where(Customer.store_id == store_id)).all())
