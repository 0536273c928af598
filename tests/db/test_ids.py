"""Ids allocated before the insert are new, ascending and never handed out twice."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from patronage.catalog.models import Product
from patronage.db.base import table_of
from patronage.db.bulk import bulk_insert
from patronage.db.ids import allocate_ids
from patronage.stores.models import Store

AT = datetime(2026, 6, 24, 17, 28, 34, tzinfo=UTC)
products = table_of(Product)
COLUMNS = ("id", "store_id", "sku", "title", "created_at", "updated_at")


def _product(session: Session, store: Store, sku: str) -> Product:
    product = Product(store_id=store.id, sku=sku, title=sku, created_at=AT, updated_at=AT)
    session.add(product)
    session.flush()
    return product


def test_ids_follow_the_largest_stored_one_and_ascend(session: Session, store: Store) -> None:
    stored = _product(session, store, "SKU-1")

    ids = allocate_ids(session, products, 3)

    assert len(set(ids)) == 3 and ids == sorted(ids)
    assert min(ids) > stored.id


def test_two_allocations_in_one_transaction_never_overlap(session: Session, store: Store) -> None:
    first = allocate_ids(session, products, 5)

    second = allocate_ids(session, products, 5)

    assert not set(first) & set(second)


def test_allocated_ids_can_be_inserted_and_later_rows_get_other_ids(
    session: Session, store: Store
) -> None:
    ids = allocate_ids(session, products, 2)
    rows = [(ids[0], store.id, "A", "A", AT, AT), (ids[1], store.id, "B", "B", AT, AT)]
    bulk_insert(session, products, COLUMNS, rows)

    later = _product(session, store, "C")

    assert later.id not in ids
    skus = session.scalars(select(Product.sku).where(Product.id.in_(ids)).order_by(Product.id))
    assert list(skus) == ["A", "B"]


def test_nothing_to_allocate(session: Session, store: Store) -> None:
    before = session.scalar(select(func.count()).select_from(products))

    assert allocate_ids(session, products, 0) == []
    assert session.scalar(select(func.count()).select_from(products)) == before
