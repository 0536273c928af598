"""The tracking intake: batches of Segment / RudderStack messages → events, customers, orders.

The batches are handled with a handful of statements whatever their size: one look-up of the
message ids already stored, one of the identities the messages name, one bulk customer
resolution, one bulk event insert, and — only when needed — one back-fill of anonymous events
and the order changes of e-commerce events. Several requests' batches can be ingested together
(see `ingest_deliveries`), which is how the API commits concurrent requests in one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from patronage.customers import repository as customer_repository
from patronage.customers.schemas import ConsentIn, CustomerIn
from patronage.customers.service import resolve_customers
from patronage.tracking import ecommerce, repository
from patronage.tracking.schemas import (
    TRACKING_SOURCE,
    IdentifyProfile,
    InvalidMessageError,
    TrackingMessage,
    normalise_message,
    parse_moment,
    profile_from_traits,
)

log = logging.getLogger(__name__)

_MAX_PROBLEMS = 20
USER_ID = "user_id"
ANONYMOUS_ID = "anonymous_id"

Key = tuple[str, str]


@dataclass
class IntakeSummary:
    """What one batch did."""

    received: int = 0
    accepted: int = 0
    duplicates: int = 0
    invalid: int = 0
    customers_created: int = 0
    anonymous_ids_linked: int = 0
    orders_written: int = 0
    refunds: int = 0
    cancellations: int = 0
    order_changes_skipped: int = 0
    problems: list[str] = field(default_factory=list)

    def add(self, other: IntakeSummary) -> None:
        """Fold another summary into this one."""
        for name in ("received", "accepted", "duplicates", "invalid", "customers_created",
                     "anonymous_ids_linked", "orders_written", "refunds", "cancellations",
                     "order_changes_skipped"):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.problems.extend(other.problems[: _MAX_PROBLEMS - len(self.problems)])

    def reject(self, index: int, reason: object) -> None:
        """Count a message that could not be accepted, and say why."""
        self.invalid += 1
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(f"message {index}: {reason}")


@dataclass(frozen=True, slots=True)
class Delivery:
    """The raw messages of one request, with its `sentAt` and the time it arrived."""

    raw_messages: Sequence[Any]
    sent_at: Any
    received_at: datetime


def ingest_batch(
    session: Session,
    *,
    store_id: int,
    raw_messages: Sequence[Any],
    sent_at: Any,
    received_at: datetime,
) -> IntakeSummary:
    """Record one batch of raw messages (see `ingest_deliveries`)."""
    return ingest_deliveries(
        session, store_id=store_id, deliveries=[Delivery(raw_messages, sent_at, received_at)]
    )


def ingest_deliveries(
    session: Session, *, store_id: int, deliveries: Sequence[Delivery]
) -> IntakeSummary:
    """Record the batches of one store, in order; replaying the same message ids changes nothing.

    Invalid messages are skipped and counted, never failing the rest. The caller commits.
    """
    summary = IntakeSummary()
    messages: list[TrackingMessage] = []
    seen: set[str] = set()
    for delivery in deliveries:
        summary.received += len(delivery.raw_messages)
        messages.extend(_normalise(delivery, seen, summary))
    if messages:
        stored = repository.existing_message_ids(
            session, store_id, [message.message_id for message in messages]
        )
        if stored:
            summary.duplicates += sum(message.message_id in stored for message in messages)
            messages = [message for message in messages if message.message_id not in stored]
    if not messages:
        return summary

    links = _link_customers(session, store_id, messages, summary)
    repository.insert_events(
        session,
        [
            _event_row(store_id, message, customer_id)
            for message, customer_id in zip(messages, links.customer_ids, strict=True)
        ],
    )
    repository.link_anonymous_events(session, store_id, links.newly_linked)
    summary.accepted = len(messages)
    summary.anonymous_ids_linked = len(links.newly_linked)

    order_events = []
    for message in messages:
        if message.type == "track" and ecommerce.is_order_event(message.name):
            email = ecommerce.order_email(message)
            order_events.append(
                ecommerce.OrderEvent(message, links.order_customer(message, email), email)
            )
    if order_events:
        commerce = ecommerce.record_order_events(session, store_id, order_events)
        summary.orders_written = commerce.orders_written
        summary.refunds = commerce.refunds
        summary.cancellations = commerce.cancellations
        summary.order_changes_skipped = commerce.skipped
        summary.problems.extend(commerce.problems[: _MAX_PROBLEMS - len(summary.problems)])
    return summary


def _normalise(delivery: Delivery, seen: set[str], summary: IntakeSummary) -> list[TrackingMessage]:
    """Canonical messages, invalid ones and repeats of `seen` message ids left out."""
    messages: list[TrackingMessage] = []
    sent_at = parse_moment(delivery.sent_at)
    invalid = summary.invalid
    for index, raw in enumerate(delivery.raw_messages):
        try:
            message = normalise_message(raw, sent_at=sent_at, received_at=delivery.received_at)
        except InvalidMessageError as error:
            summary.reject(index, error)
            continue
        if message.message_id in seen:
            summary.duplicates += 1
            continue
        seen.add(message.message_id)
        messages.append(message)
    if summary.invalid > invalid:
        log.warning("tracking: %d invalid message(s) skipped: %s", summary.invalid - invalid,
                    "; ".join(summary.problems[-5:]))  # fmt: skip
    return messages


def _event_row(store_id: int, message: TrackingMessage, customer_id: int | None) -> tuple[Any, ...]:
    """The message as values in `repository.EVENT_COLUMNS` order."""
    return (
        store_id, message.message_id, message.type, message.name, customer_id, message.user_id,
        message.anonymous_id, message.occurred_at, message.received_at, TRACKING_SOURCE,
        message.properties, message.context,
    )  # fmt: skip


# --- Who each message is about ------------------------------------------------------------------


@dataclass
class CustomerLinks:
    """The customer of each message, and the anonymous ids this batch tied to a customer."""

    customer_ids: list[int | None]
    owners: dict[Key, int]
    newly_linked: dict[str, int]

    def order_customer(self, message: TrackingMessage, email: str | None) -> CustomerIn | None:
        """The buyer as order input: the message's user (or linked anonymous id) and email."""
        identities: list[Key] = []
        if message.user_id is not None:
            identities.append((USER_ID, message.user_id))
        elif (
            message.anonymous_id is not None and (ANONYMOUS_ID, message.anonymous_id) in self.owners
        ):
            identities.append((ANONYMOUS_ID, message.anonymous_id))
        if not identities and email is None:
            return None
        return CustomerIn(source=TRACKING_SOURCE, email=email, identities=identities)


def _link_customers(
    session: Session, store_id: int, messages: list[TrackingMessage], summary: IntakeSummary
) -> CustomerLinks:
    """Resolve the customers the batch names, in one call, and return each message's customer.

    A user id always has a customer (created on first sight). An anonymous id is tied to the
    user id it first arrives with, unless it already belongs to another known user (a shared
    device): that never merges two users. A message with only an anonymous id gets the customer
    that anonymous id is tied to, or none.
    """
    profiles: dict[int, IdentifyProfile] = {
        index: profile_from_traits(message.traits, identities=[], seen_at=message.occurred_at)
        for index, message in enumerate(messages)
        if message.type == "identify"
    }
    keys: set[Key] = set()
    for message in messages:
        if message.user_id is not None:
            keys.add((USER_ID, message.user_id))
        if message.anonymous_id is not None:
            keys.add((ANONYMOUS_ID, message.anonymous_id))
    for profile in profiles.values():
        # Every key an input will be resolved by: any customer a merge touches is then in `known`.
        keys.update(profile.customer.identity_keys())
    known = repository.find_identities(session, store_id, keys)
    linker = _AnonymousLinker(session, store_id, messages, known)

    # First every message's identities (which also records who claims each anonymous id) …
    identities_of: list[list[Key]] = []
    for message in messages:
        identities: list[Key] = []
        if message.user_id is not None:
            identities.append((USER_ID, message.user_id))
        if message.anonymous_id is not None and (
            message.user_id is None or linker.may_link(message)
        ):
            identities.append((ANONYMOUS_ID, message.anonymous_id))
        identities_of.append(identities)
    # … then the inputs to resolve: every identify, and users or ties not known yet.
    inputs: list[CustomerIn] = []
    shared_inputs: dict[tuple[Key, ...], CustomerIn] = {}
    for index, (message, identities) in enumerate(zip(messages, identities_of, strict=True)):
        identify = profiles.get(index)
        if identify is not None:
            customer = identify.customer
            customer.identities = identities
            if (
                message.user_id is None
                and (ANONYMOUS_ID, message.anonymous_id) not in known
                and not linker.is_claimed(message.anonymous_id)
                and not (customer.email or customer.phone)
            ):
                continue  # an anonymous visitor with nothing to recognise them by yet
            inputs.append(customer)
        elif message.user_id is not None and _needs_resolution(identities, known):
            signature = tuple(identities)
            shared = shared_inputs.get(signature)
            if shared is None:
                shared = CustomerIn(source=TRACKING_SOURCE, identities=identities,
                                    seen_at=message.occurred_at)  # fmt: skip
                shared_inputs[signature] = shared
                inputs.append(shared)
            elif shared.seen_at is None or message.occurred_at < shared.seen_at:
                shared.seen_at = message.occurred_at
    _add_pending_opt_ins(session, store_id, profiles, known)

    results = resolve_customers(session, store_id, inputs)
    summary.customers_created += sum(result.created for result in results)
    owners: dict[Key, int] = dict(known)
    stale = False
    for customer, result in zip(inputs, results, strict=True):
        for key in customer.identity_keys():
            # A key now held by another customer than before: the resolution merged that one
            # away, and other keys it held moved too. Re-read who holds what.
            stale = stale or (key in known and known[key] != result.customer_id)
            owners[key] = result.customer_id
    if stale:
        owners.update(repository.find_identities(session, store_id, owners.keys()))

    customer_ids: list[int | None] = []
    for message in messages:
        customer_id = None
        if message.user_id is not None:
            customer_id = owners.get((USER_ID, message.user_id))
        if customer_id is None and message.anonymous_id is not None:
            customer_id = owners.get((ANONYMOUS_ID, message.anonymous_id))
        customer_ids.append(customer_id)
    newly_linked = {
        value: customer_id
        for (kind, value), customer_id in owners.items()
        if kind == ANONYMOUS_ID and (kind, value) not in known
    }
    return CustomerLinks(customer_ids, owners, newly_linked)


def _needs_resolution(identities: list[Key], known: dict[Key, int]) -> bool:
    """Whether a message's identities add anything: a new user id, or a newly tied anonymous id."""
    owners = {known.get(key) for key in identities}
    return None in owners or len(owners) > 1


class _AnonymousLinker:
    """Decides whether a message with a user id may tie its anonymous id to that user."""

    def __init__(
        self,
        session: Session,
        store_id: int,
        messages: list[TrackingMessage],
        known: dict[Key, int],
    ) -> None:
        self.known = known
        self.first_user: dict[str, str] = {}
        # Owners of anonymous ids that arrive with a user id other than their owner's: do they
        # already belong to a user (then never re-tie), or are they a pre-sign-up profile?
        contested = {
            known[(ANONYMOUS_ID, message.anonymous_id)]
            for message in messages
            if message.user_id is not None
            and message.anonymous_id is not None
            and (ANONYMOUS_ID, message.anonymous_id) in known
            and known[(ANONYMOUS_ID, message.anonymous_id)] != known.get((USER_ID, message.user_id))
        }
        self.owned_by_user = (
            repository.customers_with_user_id(session, store_id, contested) if contested else set()
        )

    def is_claimed(self, anonymous_id: str | None) -> bool:
        """Whether a message of this batch tied the anonymous id to a user."""
        return anonymous_id in self.first_user

    def may_link(self, message: TrackingMessage) -> bool:
        """True when tying `message.anonymous_id` to `message.user_id` merges no two users."""
        assert message.user_id is not None and message.anonymous_id is not None
        if self.first_user.setdefault(message.anonymous_id, message.user_id) != message.user_id:
            return False  # the batch already tied it to someone else
        owner = self.known.get((ANONYMOUS_ID, message.anonymous_id))
        if owner is None or owner == self.known.get((USER_ID, message.user_id)):
            return True
        return owner not in self.owned_by_user


def _add_pending_opt_ins(
    session: Session,
    store_id: int,
    profiles: dict[int, IdentifyProfile],
    known: dict[Key, int],
) -> None:
    """Record opt-ins as `pending` consent, and only where the customer has no consent yet.

    The write key is public (it ships in web pages), so an identify call is not proof of consent:
    it may start a double opt-in, never overwrite what the customer said elsewhere. Opt-outs are
    always honoured (they are already in each profile's consents).
    """
    wanting = [profile for profile in profiles.values() if profile.opt_ins]
    if not wanting:
        return
    candidates = {
        id(profile): {known[key] for key in profile.customer.identity_keys() if key in known}
        for profile in wanting
    }
    every_candidate = set().union(*candidates.values())
    held = (
        customer_repository.load_consents(session, store_id, every_candidate)
        if every_candidate
        else {}
    )
    for profile in wanting:
        seen_at = profile.customer.seen_at
        assert seen_at is not None
        for channel in profile.opt_ins:
            if any((customer_id, channel) in held for customer_id in candidates[id(profile)]):
                continue
            profile.customer.consents[channel] = ConsentIn("pending", TRACKING_SOURCE, seen_at)
