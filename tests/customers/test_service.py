"""Identities from several sources resolve to one customer; shared identities merge customers."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from patronage.customers.models import Consent, ConsentChange, Customer, CustomerMerge
from patronage.customers.schemas import ConsentIn, CustomerIn
from patronage.customers.service import get_customer, resolve_customer, resolve_customers
from patronage.orders.schemas import OrderIn
from patronage.orders.service import upsert_orders
from patronage.stores.models import Store
from patronage.stores.service import create_store

AT = datetime(2026, 3, 1, tzinfo=UTC)


def test_same_email_twice_in_one_batch_is_one_new_customer(session: Session, store: Store) -> None:
    results = resolve_customers(
        session,
        store.id,
        [
            CustomerIn(source="csv", email="ana@example.com", first_name="Ana"),
            CustomerIn(source="csv", email="ana@example.com", last_name="Lima"),
        ],
    )
    assert results[0].customer_id == results[1].customer_id
    assert (results[0].created, results[1].created) == (True, False)
    customer = get_customer(session, store.id, results[0].customer_id)
    assert (customer.first_name, customer.last_name) == ("Ana", "Lima")


def test_replaying_the_same_input_changes_nothing(session: Session, store: Store) -> None:
    given = CustomerIn(source="csv", email="bo@example.com", phone="+4915112345678", tags=["vip"])
    first = resolve_customer(session, store.id, given)
    again = resolve_customer(session, store.id, given)
    assert first.created and not again.created and not again.updated
    assert again.customer_id == first.customer_id


def test_shared_identity_merges_two_existing_customers(session: Session, store: Store) -> None:
    by_email = resolve_customer(session, store.id, CustomerIn(source="csv", email="cy@example.com"))
    by_phone = resolve_customer(
        session, store.id, CustomerIn(source="sms", phone="+919871966979", first_name="Cy")
    )
    upsert_orders(
        session,
        store,
        [
            OrderIn(
                source="demo",
                external_id="o-1",
                currency="USD",
                placed_at=AT,
                total=Decimal("10"),
                customer=CustomerIn(source="sms", phone="+919871966979"),
            )
        ],
    )
    assert by_email.customer_id != by_phone.customer_id
    both = resolve_customer(
        session,
        store.id,
        CustomerIn(source="shopify", email="cy@example.com", phone="+919871966979"),
    )
    survivor = min(by_email.customer_id, by_phone.customer_id)
    assert both.customer_id == survivor and both.updated
    loser = max(by_email.customer_id, by_phone.customer_id)
    merged = session.get(Customer, loser)
    assert merged is not None and merged.merged_into_id == survivor
    assert get_customer(session, store.id, loser).id == survivor
    assert get_customer(session, store.id, survivor).first_name == "Cy"
    merge = session.scalars(select(CustomerMerge).where(CustomerMerge.store_id == store.id)).one()
    assert (merge.surviving_id, merge.merged_id) == (survivor, loser)
    from patronage.orders.models import Order

    order = session.scalars(
        select(Order).where(Order.store_id == store.id, Order.external_id == "o-1")
    ).one()
    assert order.customer_id == survivor


def test_consent_keeps_the_newest_statement_and_its_history(session: Session, store: Store) -> None:
    early, late = AT, AT.replace(month=5)
    customer = CustomerIn(
        source="shopify",
        email="di@example.com",
        consents={"email": ConsentIn("subscribed", "shopify_csv", late)},
    )
    result = resolve_customer(session, store.id, customer)
    stale = CustomerIn(
        source="tracking",
        email="di@example.com",
        consents={"email": ConsentIn("unsubscribed", "old_list", early)},
    )
    resolve_customer(session, store.id, stale)
    consent = session.scalars(
        select(Consent).where(Consent.customer_id == result.customer_id)
    ).one()
    assert (consent.status, consent.source) == ("subscribed", "shopify_csv")
    newer = CustomerIn(
        source="web",
        email="di@example.com",
        consents={"email": ConsentIn("unsubscribed", "one_click", late.replace(month=6))},
    )
    resolve_customer(session, store.id, newer)
    session.expire_all()
    consent = session.scalars(
        select(Consent).where(Consent.customer_id == result.customer_id)
    ).one()
    assert consent.status == "unsubscribed"
    history = session.scalars(
        select(ConsentChange.status)
        .where(ConsentChange.customer_id == result.customer_id)
        .order_by(ConsentChange.recorded_at)
    ).all()
    assert history == ["subscribed", "unsubscribed"]


def test_identities_never_cross_stores(session: Session, store: Store) -> None:
    other = create_store(session, name="Other", base_currency="EUR").store
    mine = resolve_customer(session, store.id, CustomerIn(source="csv", email="ed@example.com"))
    theirs = resolve_customer(session, other.id, CustomerIn(source="csv", email="ed@example.com"))
    assert mine.customer_id != theirs.customer_id and theirs.created
