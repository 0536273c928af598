"""The tracking intake service: events, customers, anonymous back-fill, orders, replays."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from patronage.customers.models import Consent, Customer, CustomerIdentity
from patronage.customers.schemas import ConsentIn, CustomerIn
from patronage.orders.fx import set_rate
from patronage.orders.models import Order, OrderLine, Refund
from patronage.orders.schemas import OrderIn
from patronage.orders.service import upsert_orders
from patronage.stores.models import Store
from patronage.stores.service import create_store
from patronage.tracking.intake import Delivery, IntakeSummary, ingest_batch, ingest_deliveries
from patronage.tracking.models import Event

RECEIVED = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
T0 = datetime(2026, 6, 30, 9, 0, tzinfo=UTC)


def _ingest(session: Session, store: Store, *messages: Any) -> IntakeSummary:
    return ingest_batch(
        session, store_id=store.id, raw_messages=list(messages), sent_at=None, received_at=RECEIVED
    )


def _at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def _events(session: Session, store: Store) -> dict[str, Event]:
    rows = session.scalars(select(Event).where(Event.store_id == store.id))
    return {event.message_id: event for event in rows}


def _owner(session: Session, store: Store, kind: str, value: str) -> int | None:
    return session.scalar(
        select(CustomerIdentity.customer_id).where(
            CustomerIdentity.store_id == store.id,
            CustomerIdentity.kind == kind,
            CustomerIdentity.value == value,
        )
    )


def _customers(session: Session, store: Store) -> list[Customer]:
    return list(session.scalars(select(Customer).where(Customer.store_id == store.id)))


def _orders(session: Session, store: Store) -> list[Order]:
    return list(session.scalars(select(Order).where(Order.store_id == store.id)))


def test_track_with_a_user_id_creates_the_customer_and_links_the_event(
    session: Session, store: Store
) -> None:
    summary = _ingest(
        session,
        store,
        {
            "type": "track",
            "event": "Product Viewed",
            "userId": "u-1",
            "messageId": "m-1",
            "properties": {"sku": "TEA-1"},
            "context": {"ip": "203.0.113.1"},
            "timestamp": _at(0),
        },
    )
    event = _events(session, store)["m-1"]
    assert event.customer_id == _owner(session, store, "user_id", "u-1") is not None
    assert (event.type, event.name, event.user_id, event.source) == (
        "track",
        "Product Viewed",
        "u-1",
        "tracking",
    )
    assert event.properties == {"sku": "TEA-1"} and event.context == {"ip": "203.0.113.1"}
    assert event.occurred_at == T0 and event.received_at == RECEIVED
    assert (summary.accepted, summary.customers_created) == (1, 1)
    customer = session.get(Customer, event.customer_id)
    assert customer is not None and customer.first_seen_at == T0


def test_identify_fills_the_profile_and_ties_the_anonymous_id(
    session: Session, store: Store
) -> None:
    _ingest(
        session,
        store,
        {
            "type": "identify",
            "userId": "u-1",
            "anonymousId": "a-1",
            "messageId": "m-1",
            "context": {"traits": {"email": "Ana@Example.com", "firstName": "Ana", "plan": "pro"}},
            "traits": {"lastName": "Silva", "country": "br"},
        },
    )
    customer_id = _owner(session, store, "user_id", "u-1")
    assert customer_id is not None
    assert _owner(session, store, "anonymous_id", "a-1") == customer_id
    assert _owner(session, store, "email", "ana@example.com") == customer_id
    customer = session.get(Customer, customer_id)
    assert customer is not None
    assert (customer.email, customer.first_name, customer.last_name, customer.country) == (
        "ana@example.com",
        "Ana",
        "Silva",
        "BR",
    )
    assert customer.attributes == {"plan": "pro"}
    event = _events(session, store)["m-1"]
    assert event.type == "identify" and event.customer_id == customer_id
    assert event.properties["email"] == "Ana@Example.com"


def test_anonymous_events_are_back_filled_when_an_identify_ties_them_to_a_user(
    session: Session, store: Store
) -> None:
    # given a visitor browsing anonymously
    _ingest(
        session,
        store,
        {"type": "page", "anonymousId": "a-1", "name": "Home", "messageId": "p-1"},
        {"type": "track", "anonymousId": "a-1", "event": "Product Viewed", "messageId": "t-1"},
        {"type": "page", "anonymousId": "a-2", "name": "Home", "messageId": "p-2"},
    )
    assert {event.customer_id for event in _events(session, store).values()} == {None}
    assert _customers(session, store) == []
    # when the visitor signs in
    summary = _ingest(
        session,
        store,
        {
            "type": "identify",
            "userId": "u-1",
            "anonymousId": "a-1",
            "traits": {"email": "ana@example.com"},
            "messageId": "i-1",
        },
    )
    # then their earlier events are theirs, another visitor's are not
    customer_id = _owner(session, store, "user_id", "u-1")
    events = _events(session, store)
    assert events["p-1"].customer_id == events["t-1"].customer_id == customer_id is not None
    assert events["p-2"].customer_id is None
    assert summary.anonymous_ids_linked == 1
    # and later anonymous-only events are linked on arrival
    _ingest(session, store, {"type": "page", "anonymousId": "a-1", "messageId": "p-3"})
    assert _events(session, store)["p-3"].customer_id == customer_id


def test_an_anonymous_event_earlier_in_the_same_batch_is_linked(
    session: Session, store: Store
) -> None:
    _ingest(
        session,
        store,
        {"type": "page", "anonymousId": "a-1", "messageId": "p-1"},
        {
            "type": "track",
            "userId": "u-1",
            "anonymousId": "a-1",
            "event": "Signed Up",
            "messageId": "t-1",
        },
    )
    events = _events(session, store)
    assert events["p-1"].customer_id == events["t-1"].customer_id is not None


def test_a_shared_device_never_merges_two_users(session: Session, store: Store) -> None:
    # given an anonymous id that already belongs to u-1
    _ingest(
        session,
        store,
        {"type": "identify", "userId": "u-1", "anonymousId": "a-1", "messageId": "i-1"},
    )
    first = _owner(session, store, "user_id", "u-1")
    # when u-2 signs in on the same browser, and both again in one batch
    _ingest(
        session,
        store,
        {"type": "track", "userId": "u-2", "anonymousId": "a-1", "event": "E", "messageId": "t-1"},
        {"type": "identify", "userId": "u-3", "anonymousId": "a-9", "messageId": "i-3"},
        {"type": "track", "userId": "u-4", "anonymousId": "a-9", "event": "E", "messageId": "t-4"},
    )
    # then every user keeps their own customer and the anonymous ids stay with their first user
    second = _owner(session, store, "user_id", "u-2")
    assert first is not None and second is not None and first != second
    assert _owner(session, store, "anonymous_id", "a-1") == first
    assert _owner(session, store, "anonymous_id", "a-9") == _owner(session, store, "user_id", "u-3")
    assert _owner(session, store, "user_id", "u-4") != _owner(session, store, "user_id", "u-3")
    assert _events(session, store)["t-1"].customer_id == second
    assert all(customer.merged_into_id is None for customer in _customers(session, store))


def test_a_pre_sign_up_profile_becomes_the_users_customer(session: Session, store: Store) -> None:
    # given a newsletter sign-up: an anonymous identify with an email
    _ingest(
        session,
        store,
        {
            "type": "identify",
            "anonymousId": "a-1",
            "messageId": "i-1",
            "traits": {"email": "ana@example.com"},
        },
    )
    profile = _owner(session, store, "anonymous_id", "a-1")
    assert profile is not None
    # when the visitor later signs in with a user id
    _ingest(
        session,
        store,
        {
            "type": "track",
            "userId": "u-1",
            "anonymousId": "a-1",
            "event": "Signed In",
            "messageId": "t-1",
        },
    )
    # then the user id joins that customer
    assert _owner(session, store, "user_id", "u-1") == profile
    assert len(_customers(session, store)) == 1


def test_an_anonymous_identify_with_nothing_to_recognise_creates_nobody(
    session: Session, store: Store
) -> None:
    _ingest(
        session,
        store,
        {
            "type": "identify",
            "anonymousId": "a-1",
            "messageId": "i-1",
            "traits": {"firstName": "Ana"},
        },
    )
    assert _customers(session, store) == []
    assert _events(session, store)["i-1"].customer_id is None


def test_replaying_messages_changes_nothing(session: Session, store: Store) -> None:
    # given an identify, then a newer one that changes the email
    old = {
        "type": "identify",
        "userId": "u-1",
        "messageId": "i-1",
        "timestamp": _at(0),
        "traits": {"email": "old@example.com", "firstName": "Ana"},
    }
    order = {
        "type": "track",
        "userId": "u-1",
        "event": "Order Completed",
        "messageId": "o-1",
        "timestamp": _at(1),
        "properties": {"order_id": "1001", "total": 20},
    }
    _ingest(session, store, old, order)
    _ingest(
        session,
        store,
        {**old, "messageId": "i-2", "timestamp": _at(2), "traits": {"email": "new@example.com"}},
    )
    customer = _customers(session, store)[0]
    before = (customer.email, customer.first_name, customer.updated_at)
    stored_order = _orders(session, store)[0]
    order_before = (stored_order.updated_at, stored_order.content_hash)
    # when the first batch is delivered again (a client retry)
    summary = _ingest(session, store, old, order)
    # then nothing moves backwards, and nothing is stored twice
    session.expire_all()
    customer = _customers(session, store)[0]
    assert (customer.email, customer.first_name, customer.updated_at) == before
    assert before[0] == "new@example.com"
    stored_order = _orders(session, store)[0]
    assert (stored_order.updated_at, stored_order.content_hash) == order_before
    assert len(_events(session, store)) == 3
    assert (summary.accepted, summary.duplicates) == (0, 2)


def test_repeats_within_one_batch_and_across_deliveries_are_stored_once(
    session: Session, store: Store
) -> None:
    message = {"type": "page", "anonymousId": "a-1", "messageId": "p-1"}
    later = RECEIVED + timedelta(seconds=5)
    summary = ingest_deliveries(
        session,
        store_id=store.id,
        deliveries=[
            Delivery([message, message], None, RECEIVED),
            Delivery([message, {**message, "messageId": "p-2"}], None, later),
        ],
    )
    events = _events(session, store)
    assert sorted(events) == ["p-1", "p-2"]
    assert events["p-1"].received_at == RECEIVED and events["p-2"].received_at == later
    assert (summary.received, summary.accepted, summary.duplicates) == (4, 2, 2)


def test_message_ids_are_unique_per_store_only(session: Session, store: Store) -> None:
    other = create_store(session, name="Other", base_currency="EUR").store
    message = {"type": "page", "anonymousId": "a-1", "messageId": "p-1"}
    _ingest(session, store, message)
    _ingest(session, other, message)
    assert list(_events(session, store)) == list(_events(session, other)) == ["p-1"]


def test_invalid_messages_are_skipped_and_counted(session: Session, store: Store) -> None:
    summary = _ingest(
        session,
        store,
        {"type": "page", "anonymousId": "a-1", "messageId": "p-1"},
        {"type": "track", "anonymousId": "a-1"},
        {"type": "teleport", "userId": "u"},
        "junk",
    )
    assert list(_events(session, store)) == ["p-1"]
    assert (summary.received, summary.accepted, summary.invalid) == (4, 1, 3)
    assert summary.problems[0] == "message 1: a track message needs an event name"


# --- Orders -----------------------------------------------------------------------------------


def _order_completed(message_id: str, properties: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Completed",
        "userId": "u-1",
        "messageId": message_id,
        "timestamp": _at(5),
        "properties": properties,
        **fields,
    }


def test_order_completed_creates_a_paid_order_for_the_customer(
    session: Session, store: Store
) -> None:
    summary = _ingest(
        session,
        store,
        _order_completed(
            "o-1",
            {
                "order_id": "T-1001",
                "total": 31.5,
                "shipping": 5,
                "coupon": "WELCOME",
                "products": [
                    {
                        "sku": "TEA-1",
                        "name": "Sencha",
                        "category": "Tea",
                        "price": 13.25,
                        "quantity": 2,
                    }
                ],
            },
            context={"traits": {"email": "ana@example.com"}},
        ),
    )
    [order] = _orders(session, store)
    customer_id = _owner(session, store, "user_id", "u-1")
    assert (order.source, order.external_id, order.currency) == ("tracking", "T-1001", "USD")
    assert (order.total, order.shipping, order.status) == (Decimal("31.5"), Decimal(5), "paid")
    assert order.placed_at == order.paid_at == T0 + timedelta(minutes=5)
    assert order.discount_codes == ["WELCOME"] and order.customer_id == customer_id
    assert _owner(session, store, "email", "ana@example.com") == customer_id
    [line] = session.scalars(select(OrderLine).where(OrderLine.order_id == order.id))
    assert (line.sku, line.title, line.quantity, line.unit_price) == (
        "TEA-1",
        "Sencha",
        2,
        Decimal("13.25"),
    )
    assert summary.orders_written == 1 and _events(session, store)["o-1"].name == "Order Completed"


def test_order_events_update_the_order_a_platform_already_sent(
    session: Session, store: Store
) -> None:
    # given the same order imported from Shopify, in euros
    set_rate(
        session,
        store.id,
        currency="EUR",
        rate_date=date(2026, 6, 1),
        rate=Decimal("1.1"),
        source="test",
    )
    upsert_orders(
        session,
        store,
        [
            OrderIn(
                source="shopify",
                external_id="1001",
                currency="EUR",
                placed_at=T0,
                total=Decimal(40),
                customer=CustomerIn(source="shopify", email="ana@example.com"),
            )
        ],
    )
    # when the storefront tracks its completion and a later update
    _ingest(
        session,
        store,
        _order_completed("o-1", {"order_id": "1001", "total": 40}),
        {
            "type": "track",
            "event": "Order Updated",
            "userId": "u-1",
            "messageId": "o-2",
            "timestamp": _at(9),
            "properties": {"order_id": "1001", "total": 42},
        },
    )
    # then there is still one order, the Shopify one, updated and paid
    [order] = _orders(session, store)
    assert (order.source, order.currency, order.total, order.status) == (
        "shopify",
        "EUR",
        Decimal(42),
        "paid",
    )
    assert order.paid_at == T0 + timedelta(minutes=5)


def test_order_refunded_and_cancelled_change_the_order(session: Session, store: Store) -> None:
    # given an order completed and refunded in part in one batch
    summary = _ingest(
        session,
        store,
        _order_completed("o-1", {"order_id": "1001", "total": 50}),
        {
            "type": "track",
            "event": "Order Refunded",
            "userId": "u-1",
            "messageId": "r-1",
            "timestamp": _at(30),
            "properties": {"order_id": "1001", "total": 20, "reason": "broken"},
        },
    )

    [order] = _orders(session, store)
    [refund] = session.scalars(select(Refund).where(Refund.order_id == order.id))
    assert (refund.external_id, refund.amount, refund.reason) == (
        "tracking:r-1",
        Decimal(20),
        "broken",
    )
    assert (order.refunded, order.status, summary.refunds) == (Decimal(20), "partially_refunded", 1)
    # when it is cancelled
    _ingest(
        session,
        store,
        {
            "type": "track",
            "event": "Order Cancelled",
            "userId": "u-1",
            "messageId": "c-1",
            "timestamp": _at(40),
            "properties": {"order_id": "1001"},
        },
    )
    session.expire_all()
    [order] = _orders(session, store)
    assert order.cancelled_at == T0 + timedelta(minutes=40) and order.status == "cancelled"
    assert order.refunded == Decimal(20) and order.total == Decimal(50)


def test_an_order_updated_right_after_its_completion_keeps_its_amounts(
    session: Session, store: Store
) -> None:
    _ingest(
        session,
        store,
        _order_completed("o-1", {"order_id": "9", "total": 25, "shipping": 5}),
        {
            "type": "track",
            "event": "Order Updated",
            "userId": "u-1",
            "messageId": "o-2",
            "timestamp": _at(7),
            "properties": {"order_id": "9", "coupon": "LATE"},
        },
    )
    [order] = _orders(session, store)
    assert (order.total, order.shipping, order.status) == (Decimal(25), Decimal(5), "paid")
    assert order.discount_codes == ["LATE"]


def test_bad_order_payloads_keep_the_event_and_skip_only_the_order(
    session: Session, store: Store
) -> None:
    summary = _ingest(
        session,
        store,
        _order_completed("o-1", {"order_id": "1", "total": -5}),
        _order_completed("o-2", {"order_id": "2", "total": "ten"}),
        _order_completed("o-3", {"order_id": "3", "total": 10}),
        _order_completed("o-4", {"order_id": "4", "total": 9, "currency": "JPY"}),
        {
            "type": "track",
            "event": "Order Refunded",
            "userId": "u-1",
            "messageId": "r-1",
            "properties": {"order_id": "404"},
        },
        {
            "type": "track",
            "event": "Order Cancelled",
            "userId": "u-1",
            "messageId": "c-1",
            "properties": {},
        },
    )
    assert sorted(_events(session, store)) == ["c-1", "o-1", "o-2", "o-3", "o-4", "r-1"]
    assert [order.external_id for order in _orders(session, store)] == ["3"]
    assert (summary.accepted, summary.orders_written, summary.order_changes_skipped) == (6, 1, 5)
    assert any("total is negative" in problem for problem in summary.problems)
    assert any("no exchange rate from JPY" in problem for problem in summary.problems)
    assert any("order 404 is not known" in problem for problem in summary.problems)


def test_a_database_level_failure_skips_only_its_order(session: Session, store: Store) -> None:
    # a quantity PostgreSQL's integer column cannot hold passes validation but fails the INSERT
    summary = _ingest(
        session,
        store,
        _order_completed(
            "o-1",
            {
                "order_id": "1",
                "total": 0,
                "products": [{"sku": "A", "price": 0, "quantity": 10**10}],
            },
        ),
        _order_completed("o-2", {"order_id": "2", "total": 10}),
    )
    stored = {order.external_id for order in _orders(session, store)}
    assert sorted(_events(session, store)) == ["o-1", "o-2"]
    if session.get_bind().dialect.name == "postgresql":
        assert stored == {"2"} and summary.order_changes_skipped == 1
        assert "NumericValueOutOfRange" in summary.problems[0]
    else:  # SQLite stores any integer
        assert stored == {"1", "2"} and summary.order_changes_skipped == 0


# --- Consent ----------------------------------------------------------------------------------


def _consents(session: Session, customer_id: int | None) -> dict[str, str]:
    rows = session.scalars(select(Consent).where(Consent.customer_id == customer_id))
    return {row.channel: row.status for row in rows}


def test_opt_outs_are_recorded_and_opt_ins_wait_for_confirmation(
    session: Session, store: Store
) -> None:
    _ingest(
        session,
        store,
        {
            "type": "identify",
            "userId": "u-1",
            "messageId": "i-1",
            "timestamp": _at(0),
            "traits": {"email": "ana@example.com", "emailOptIn": True, "smsOptIn": False},
        },
    )
    customer_id = _owner(session, store, "user_id", "u-1")
    assert _consents(session, customer_id) == {"email": "pending", "sms": "unsubscribed"}


def test_an_opt_in_never_overrides_what_the_customer_said_elsewhere(
    session: Session, store: Store
) -> None:
    # given a customer subscribed through Shopify and one who unsubscribed
    upsert_orders(
        session,
        store,
        [
            OrderIn(
                source="shopify",
                external_id=str(number),
                currency="USD",
                placed_at=T0,
                total=Decimal(1),
                customer=CustomerIn(
                    source="shopify",
                    email=email,
                    consents={"email": ConsentIn(status, "shopify", T0)},
                ),
            )
            for number, (email, status) in enumerate(
                [("sub@example.com", "subscribed"), ("unsub@example.com", "unsubscribed")]
            )
        ],
    )
    # when the storefront says they opt in
    _ingest(
        session,
        store,
        *[
            {
                "type": "identify",
                "userId": f"u-{email}",
                "messageId": f"i-{email}",
                "timestamp": _at(10),
                "traits": {"email": email, "acceptsMarketing": True},
            }
            for email in ("sub@example.com", "unsub@example.com")
        ],
    )
    # then nothing changes
    assert _consents(session, _owner(session, store, "email", "sub@example.com")) == {
        "email": "subscribed"
    }
    assert _consents(session, _owner(session, store, "email", "unsub@example.com")) == {
        "email": "unsubscribed"
    }
    # but an explicit opt-out through tracking is honoured
    _ingest(
        session,
        store,
        {
            "type": "identify",
            "userId": "u-sub@example.com",
            "messageId": "i-out",
            "timestamp": _at(20),
            "traits": {"unsubscribed": True},
        },
    )
    assert _consents(session, _owner(session, store, "email", "sub@example.com")) == {
        "email": "unsubscribed"
    }


def test_events_follow_a_merge_the_batch_causes(session: Session, store: Store) -> None:
    # given u-1 (the older customer), and u-2 who gave an email
    _ingest(session, store, {"type": "track", "userId": "u-1", "event": "E", "messageId": "t-0"})
    _ingest(
        session,
        store,
        {
            "type": "identify",
            "userId": "u-2",
            "messageId": "i-0",
            "traits": {"email": "ana@example.com"},
        },
    )
    older = _owner(session, store, "user_id", "u-1")
    assert older is not None and _owner(session, store, "user_id", "u-2") != older
    # when one batch says u-1 has that email too (the same person), and u-2 acts in it
    _ingest(
        session,
        store,
        {
            "type": "identify",
            "userId": "u-1",
            "messageId": "i-1",
            "traits": {"email": "ana@example.com"},
        },
        {"type": "track", "userId": "u-2", "event": "E", "messageId": "t-2"},
    )
    # then u-2's customer was merged into u-1's, and the new event belongs to the survivor
    assert _owner(session, store, "user_id", "u-2") == older
    assert {event.customer_id for event in _events(session, store).values()} == {older}


def test_an_anonymous_identify_joins_the_user_its_batch_ties_it_to(
    session: Session, store: Store
) -> None:
    _ingest(
        session,
        store,
        {
            "type": "identify",
            "anonymousId": "a-1",
            "traits": {"firstName": "Ana"},
            "messageId": "i",
        },
        {"type": "track", "userId": "u-1", "anonymousId": "a-1", "event": "E", "messageId": "t"},
    )
    customer = session.get(Customer, _owner(session, store, "user_id", "u-1"))
    assert customer is not None and customer.first_name == "Ana"


def test_properties_and_context_round_trip_exactly(session: Session, store: Store) -> None:
    properties = {
        "name": "Café ☕ «Ünïcode»",
        "nested": {"list": [1, 2.5, None, True, "x"]},
        "empty": {},
        "big": 9223372036854775807,
        "quote": 'say "hi"\n',
    }
    context = {"locale": "de-DE", "traits": {"email": "ana@example.com"}}
    _ingest(
        session,
        store,
        {
            "type": "track",
            "userId": "u-1",
            "event": "E",
            "messageId": "t-1",
            "properties": properties,
            "context": context,
        },
    )
    session.expire_all()
    event = _events(session, store)["t-1"]
    assert event.properties == properties and event.context == context
