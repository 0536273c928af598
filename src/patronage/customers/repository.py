"""All SQL of customers, identities, merges and consent."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from patronage.customers.models import (
    Consent,
    ConsentChange,
    Customer,
    CustomerIdentity,
    CustomerMerge,
)
from patronage.db.base import table_of

_CHUNK = 500


def _chunks(values: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def find_identities(
    session: Session, store_id: int, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """Map each known (kind, value) to the customer id holding it."""
    by_kind: dict[str, set[str]] = {}
    for kind, value in keys:
        by_kind.setdefault(kind, set()).add(value)
    found: dict[tuple[str, str], int] = {}
    for kind, values in by_kind.items():
        for chunk in _chunks(sorted(values)):
            rows = session.execute(
                select(CustomerIdentity.value, CustomerIdentity.customer_id).where(
                    CustomerIdentity.store_id == store_id,
                    CustomerIdentity.kind == kind,
                    CustomerIdentity.value.in_(chunk),
                )
            )
            for value, customer_id in rows:
                found[(kind, value)] = customer_id
    return found


def load_profiles(session: Session, store_id: int, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Return the stored profile columns of these customers, by id."""
    columns = table_of(Customer).c
    profiles: dict[int, dict[str, Any]] = {}
    for chunk in _chunks(sorted(set(ids))):
        rows = session.execute(
            select(table_of(Customer)).where(columns.store_id == store_id, columns.id.in_(chunk))
        ).mappings()
        for row in rows:
            profiles[row["id"]] = dict(row)
    return profiles


def insert_customers(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Insert customers in bulk and return their new ids in input order."""
    if not rows:
        return []
    result = session.execute(
        insert(table_of(Customer)).returning(table_of(Customer).c.id, sort_by_parameter_order=True),
        rows,
    )
    return [row[0] for row in result]


def update_customers(session: Session, rows: list[dict[str, Any]]) -> None:
    """Update customers in bulk; each row holds `id` and the changed columns."""
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        by_columns.setdefault(tuple(sorted(row)), []).append(row)
    for _, group in by_columns.items():
        session.execute(update(Customer), group)


def insert_identities(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert identity rows in bulk."""
    if rows:
        session.execute(insert(table_of(CustomerIdentity)), rows)


def load_consents(
    session: Session, store_id: int, ids: Iterable[int]
) -> dict[tuple[int, str], dict[str, Any]]:
    """Return current consent rows keyed by (customer id, channel)."""
    found: dict[tuple[int, str], dict[str, Any]] = {}
    table = table_of(Consent)
    for chunk in _chunks(sorted(set(ids))):
        rows = session.execute(
            select(table).where(table.c.store_id == store_id, table.c.customer_id.in_(chunk))
        ).mappings()
        for row in rows:
            found[(row["customer_id"], row["channel"])] = dict(row)
    return found


def write_consents(
    session: Session, new_rows: list[dict[str, Any]], changed_rows: list[dict[str, Any]]
) -> None:
    """Insert new and update changed consent rows, and append every change to the history."""
    if new_rows:
        session.execute(insert(table_of(Consent)), new_rows)
    for row in changed_rows:
        session.execute(
            update(table_of(Consent))
            .where(
                table_of(Consent).c.customer_id == row["customer_id"],
                table_of(Consent).c.channel == row["channel"],
            )
            .values(status=row["status"], source=row["source"], recorded_at=row["recorded_at"])
        )
    history = new_rows + changed_rows
    if history:
        session.execute(
            insert(table_of(ConsentChange)),
            [
                {
                    key: row[key]
                    for key in (
                        "store_id",
                        "customer_id",
                        "channel",
                        "status",
                        "source",
                        "recorded_at",
                    )
                }
                for row in history
            ],
        )


def get_customer(session: Session, store_id: int, customer_id: int) -> Customer | None:
    """Return the customer if it belongs to the store."""
    return session.scalars(
        select(Customer).where(Customer.store_id == store_id, Customer.id == customer_id)
    ).first()


def find_by_email(session: Session, store_id: int, email: str) -> Customer | None:
    """Return the live customer holding this email identity."""
    customer_id = session.scalar(
        select(CustomerIdentity.customer_id).where(
            CustomerIdentity.store_id == store_id,
            CustomerIdentity.kind == "email",
            CustomerIdentity.value == email,
        )
    )
    return None if customer_id is None else get_customer(session, store_id, customer_id)


def identities_of(session: Session, store_id: int, customer_id: int) -> list[CustomerIdentity]:
    """Return the identities of one customer."""
    return list(
        session.scalars(
            select(CustomerIdentity)
            .where(
                CustomerIdentity.store_id == store_id, CustomerIdentity.customer_id == customer_id
            )
            .order_by(CustomerIdentity.id)
        )
    )


def consents_of(session: Session, store_id: int, customer_id: int) -> list[Consent]:
    """Return the current consents of one customer."""
    return list(
        session.scalars(
            select(Consent)
            .where(Consent.store_id == store_id, Consent.customer_id == customer_id)
            .order_by(Consent.channel)
        )
    )


def merges_into(session: Session, store_id: int, customer_id: int) -> list[CustomerMerge]:
    """Return the merges that folded other customers into this one."""
    return list(
        session.scalars(
            select(CustomerMerge).where(
                CustomerMerge.store_id == store_id, CustomerMerge.surviving_id == customer_id
            )
        )
    )


def move_customer_rows(
    session: Session, store_id: int, *, from_id: int, to_id: int, tables: Iterable[Any]
) -> None:
    """Re-point the rows of `tables` (each with store_id and customer_id) to another customer."""
    for table in tables:
        session.execute(
            update(table)
            .where(table.c.store_id == store_id, table.c.customer_id == from_id)
            .values(customer_id=to_id)
        )


def delete_consents(session: Session, customer_id: int) -> None:
    """Delete the current consent rows of a customer (its history stays)."""
    session.execute(delete(table_of(Consent)).where(table_of(Consent).c.customer_id == customer_id))


def record_merge(session: Session, merge: CustomerMerge) -> None:
    """Append a merge record."""
    session.add(merge)
