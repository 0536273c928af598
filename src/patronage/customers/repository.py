"""All SQL of customers, identities, merges and consent."""

from __future__ import annotations

from collections.abc import Iterable
from operator import itemgetter
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from patronage.customers.models import (
    Consent,
    ConsentChange,
    Customer,
    CustomerIdentity,
    CustomerMerge,
)
from patronage.customers.schemas import PROFILE_FIELDS
from patronage.db.base import table_of
from patronage.db.bulk import bulk_insert, select_rows
from patronage.db.ids import allocate_ids

customers_table = table_of(Customer)
identities_table = table_of(CustomerIdentity)
consents_table = table_of(Consent)
consent_changes_table = table_of(ConsentChange)
# Bulk inserts take each row as a dict holding these columns.
CUSTOMER_COLUMNS = tuple(column.name for column in customers_table.c if column.name != "id")
IDENTITY_COLUMNS = ("store_id", "customer_id", "kind", "value", "source", "created_at")
CONSENT_COLUMNS = ("store_id", "customer_id", "channel", "status", "source", "recorded_at")
_customer_values = itemgetter(*CUSTOMER_COLUMNS, "id")
# What identity resolution and merges read of a stored customer.
_PROFILE_READ = ("id", *PROFILE_FIELDS, "tags", "attributes", "merged_into_id", "first_seen_at")
_CONSENT_READ = tuple(column.name for column in consents_table.c)
_identity_values = itemgetter(*IDENTITY_COLUMNS)
_consent_values = itemgetter(*CONSENT_COLUMNS)


def find_identities(
    session: Session, store_id: int, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """Map each known (kind, value) to the customer id holding it."""
    by_kind: dict[str, set[str]] = {}
    for kind, value in keys:
        by_kind.setdefault(kind, set()).add(value)
    found: dict[tuple[str, str], int] = {}
    for kind, values in by_kind.items():
        rows = select_rows(
            session, identities_table, ("value", "customer_id"),
            where={"store_id": store_id, "kind": kind}, key="value", values=sorted(values),
        )  # fmt: skip
        for value, customer_id in rows:
            found[(kind, value)] = customer_id
    return found


def load_profiles(session: Session, store_id: int, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Return the stored profile (fields, tags, attributes, merge, first seen) by customer id."""
    rows = select_rows(
        session, customers_table, _PROFILE_READ, where={"store_id": store_id}, key="id",
        values=sorted(set(ids)),
    )  # fmt: skip
    return {row[0]: dict(zip(_PROFILE_READ, row, strict=True)) for row in rows}


def insert_customers(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Insert customers in bulk, setting each row's new `id`; return the ids in input order."""
    if not rows:
        return []
    ids = allocate_ids(session, customers_table, len(rows))
    for row, customer_id in zip(rows, ids, strict=True):
        row["id"] = customer_id
    bulk_insert(
        session, customers_table, (*CUSTOMER_COLUMNS, "id"), list(map(_customer_values, rows))
    )
    return ids


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
        bulk_insert(session, identities_table, IDENTITY_COLUMNS, list(map(_identity_values, rows)))


def load_consents(
    session: Session, store_id: int, ids: Iterable[int]
) -> dict[tuple[int, str], dict[str, Any]]:
    """Return current consent rows keyed by (customer id, channel)."""
    rows = select_rows(
        session, consents_table, _CONSENT_READ, where={"store_id": store_id},
        key="customer_id", values=sorted(set(ids)),
    )  # fmt: skip
    found: dict[tuple[int, str], dict[str, Any]] = {}
    for row in rows:
        consent = dict(zip(_CONSENT_READ, row, strict=True))
        found[(consent["customer_id"], consent["channel"])] = consent
    return found


def write_consents(
    session: Session, new_rows: list[dict[str, Any]], changed_rows: list[dict[str, Any]]
) -> None:
    """Insert new and update changed consent rows, and append every change to the history."""
    if new_rows:
        bulk_insert(session, consents_table, CONSENT_COLUMNS, list(map(_consent_values, new_rows)))
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
        bulk_insert(
            session, consent_changes_table, CONSENT_COLUMNS, list(map(_consent_values, history))
        )


def count_live(session: Session, store_id: int) -> int:
    """Return how many of the store's customers were not merged into another."""
    count = session.scalar(
        select(func.count())
        .select_from(customers_table)
        .where(customers_table.c.store_id == store_id, customers_table.c.merged_into_id.is_(None))
    )
    return int(count or 0)


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
