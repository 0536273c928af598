"""Reading Segment / RudderStack bodies: encodings, limits, the canonical message, traits."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import orjson
import pytest

from patronage.tracking.schemas import (
    MAX_BATCH_BYTES,
    InvalidMessageError,
    MalformedPayloadError,
    PayloadTooLargeError,
    TrackingMessage,
    UnsupportedEncodingError,
    consent_statements,
    decode_body,
    generated_message_id,
    normalise_message,
    parse_batch,
    parse_single,
    profile_from_traits,
)

RECEIVED = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


def _normalise(raw: Mapping[str, Any], sent_at: datetime | None = None) -> TrackingMessage:
    return normalise_message(raw, sent_at=sent_at, received_at=RECEIVED)


# --- Bodies -----------------------------------------------------------------------------------


def test_gzip_and_deflate_bodies_are_decoded() -> None:
    body = orjson.dumps({"batch": []})
    assert decode_body(gzip.compress(body), "gzip") == body
    assert decode_body(zlib.compress(body), "deflate") == body
    assert decode_body(body, None) == body
    assert decode_body(body, "identity") == body


def test_a_batch_over_500_kb_after_decompression_is_refused() -> None:
    # given a small gzip body that inflates past the limit (a zip bomb in miniature)
    bomb = gzip.compress(b" " * (MAX_BATCH_BYTES + 10))
    assert len(bomb) < 5_000
    # then
    with pytest.raises(PayloadTooLargeError, match="500 KB"):
        decode_body(bomb, "gzip")
    with pytest.raises(PayloadTooLargeError):
        decode_body(b" " * (MAX_BATCH_BYTES + 1), None)


def test_broken_and_unknown_encodings_are_refused() -> None:
    with pytest.raises(MalformedPayloadError, match="gzip"):
        decode_body(b"not gzip at all", "gzip")
    with pytest.raises(MalformedPayloadError, match="truncated"):
        decode_body(gzip.compress(b'{"batch": []}')[:-12], "gzip")
    with pytest.raises(UnsupportedEncodingError, match="br"):
        decode_body(b"{}", "br")


def test_batch_body_must_be_an_object_with_a_batch_list() -> None:
    with pytest.raises(MalformedPayloadError, match="not valid JSON"):
        parse_batch(b"{nope")
    with pytest.raises(MalformedPayloadError, match="object"):
        parse_batch(b"[]")
    with pytest.raises(MalformedPayloadError, match='"batch"'):
        parse_batch(b'{"batch": {}}')
    messages, sent_at = parse_batch(b'{"batch": [{"type": "track"}], "sentAt": "x"}')
    assert messages == [{"type": "track"}] and sent_at == "x"


def test_a_message_over_32_kb_fails_the_request_naming_it() -> None:
    big = {"type": "track", "messageId": "big-one", "properties": {"blob": "x" * 33_000}}
    body = orjson.dumps({"batch": [{"type": "page"}, big]})
    with pytest.raises(MalformedPayloadError, match=r"message 1 \(messageId 'big-one'\)"):
        parse_batch(body)
    with pytest.raises(MalformedPayloadError, match="32 KB"):
        parse_single(orjson.dumps(big), "track")


def test_single_message_endpoints_take_the_type_from_the_path() -> None:
    messages, _ = parse_single(b'{"type": "page", "event": "Signed Up", "userId": "u"}', "track")
    assert messages[0]["type"] == "track"


# --- Messages ---------------------------------------------------------------------------------


def test_track_message_in_canonical_form() -> None:
    message = _normalise(
        {
            "type": "track",
            "event": " Product Viewed ",
            "userId": 42,
            "anonymousId": "a-1",
            "messageId": "m-1",
            "properties": {"sku": "T1"},
            "context": {"ip": "203.0.113.9"},
            "timestamp": "2026-06-30T10:00:00.123+02:00",
        }
    )
    assert message.type == "track" and message.name == "Product Viewed"
    assert message.user_id == "42" and message.anonymous_id == "a-1"
    assert message.message_id == "m-1"
    assert message.properties == {"sku": "T1"} and message.context == {"ip": "203.0.113.9"}
    assert message.occurred_at == datetime(2026, 6, 30, 8, 0, 0, 123000, tzinfo=UTC)
    assert message.received_at == RECEIVED


def test_event_time_falls_back_from_timestamp_to_original_timestamp_to_sent_at() -> None:
    base = {"type": "track", "event": "E", "userId": "u"}
    sent = datetime(2026, 6, 1, tzinfo=UTC)
    assert _normalise(
        {**base, "originalTimestamp": "2026-05-01T00:00:00Z", "sentAt": "2026-05-02T00:00:00Z"}
    ).occurred_at == datetime(2026, 5, 1, tzinfo=UTC)
    assert _normalise({**base, "sentAt": "2026-05-02T00:00:00Z"}).occurred_at == datetime(
        2026, 5, 2, tzinfo=UTC
    )
    assert _normalise({**base, "timestamp": "garbage"}, sent_at=sent).occurred_at == sent
    assert _normalise(base).occurred_at == RECEIVED


def test_identify_reads_traits_from_the_message_and_from_context_traits() -> None:
    # RudderStack's Python client sends identify traits only inside context.traits
    message = _normalise(
        {
            "type": "identify",
            "userId": "u-1",
            "traits": {"plan": "pro"},
            "context": {"traits": {"email": "ana@example.com", "plan": "free"}},
        }
    )
    assert message.traits == {"email": "ana@example.com", "plan": "pro"}
    assert message.properties == message.traits and message.name is None


def test_page_screen_group_and_alias_become_events() -> None:
    page = _normalise({"type": "page", "anonymousId": "a", "name": "Home", "category": "Shop"})
    assert (page.name, page.properties) == ("Home", {"category": "Shop"})
    screen = _normalise({"type": "SCREEN", "userId": "u", "name": "Cart"})
    assert (screen.type, screen.name) == ("screen", "Cart")
    group = _normalise({"type": "group", "userId": "u", "groupId": "acme", "traits": {"n": 1}})
    assert group.name == "acme" and group.properties == {"groupId": "acme", "traits": {"n": 1}}
    alias = _normalise({"type": "alias", "userId": "u", "previousId": "old"})
    assert alias.properties == {"previousId": "old"}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("not an object", "JSON object"),
        ({"type": "launch", "userId": "u"}, "unknown message type"),
        ({"type": "track", "event": "E"}, "userId or an anonymousId"),
        ({"type": "track", "userId": "u"}, "event name"),
        ({"type": "track", "userId": True, "event": "E"}, "userId must be a string"),
        ({"type": "track", "userId": "u" * 201, "event": "E"}, "longer than 200"),
        ({"type": "track", "userId": "u", "event": "E", "properties": []}, "properties"),
        ({"type": "group", "userId": "u"}, "groupId"),
        ({"type": "alias", "anonymousId": "a", "previousId": "p"}, "alias"),
    ],
)
def test_invalid_messages_are_rejected_with_a_reason(raw: object, reason: str) -> None:
    with pytest.raises(InvalidMessageError, match=reason):
        normalise_message(raw, sent_at=None, received_at=RECEIVED)


def test_missing_message_id_is_derived_from_the_content_whatever_the_key_order() -> None:
    first = {"type": "track", "event": "E", "userId": "u", "properties": {"a": 1, "b": 2}}
    retried = {
        "sentAt": "2026-01-01T00:00:00Z",
        "properties": {"b": 2, "a": 1},
        "userId": "u",
        "event": "E",
        "type": "track",
    }
    assert _normalise(first).message_id == _normalise(retried).message_id
    assert _normalise(first).message_id == generated_message_id(first)
    assert _normalise({**first, "event": "F"}).message_id != _normalise(first).message_id


def test_overlong_message_ids_are_hashed_to_fit() -> None:
    message = _normalise({"type": "page", "userId": "u", "messageId": "m" * 300})
    assert len(message.message_id) <= 128 and message.message_id.startswith("hash-")


# --- Traits -----------------------------------------------------------------------------------


def test_traits_fill_the_profile_and_the_rest_become_attributes() -> None:
    seen = datetime(2026, 6, 1, tzinfo=UTC)
    profile = profile_from_traits(
        {
            "email": " Ana@Example.COM ",
            "phone": "030 1234567",
            "name": "Ana de Souza",
            "birthday": "1990-04-02T00:00:00Z",
            "address": {"country": "de", "city": "Berlin"},
            "language": "de-DE",
            "timezone": "Europe/Berlin",
            "currency": "eur",
            "plan": "pro",
        },
        identities=[("user_id", "u-1")],
        seen_at=seen,
    )
    customer = profile.customer
    assert customer.email == "ana@example.com"
    assert customer.phone == "+49301234567"
    assert (customer.first_name, customer.last_name) == ("Ana", "de Souza")
    assert customer.birthday == date(1990, 4, 2)
    assert (customer.country, customer.language, customer.timezone, customer.currency) == (
        "DE",
        "de-DE",
        "Europe/Berlin",
        "EUR",
    )
    assert customer.attributes == {"address": {"country": "de", "city": "Berlin"}, "plan": "pro"}
    assert customer.identities == [("user_id", "u-1")] and customer.seen_at == seen
    assert customer.source == "tracking" and customer.consents == {} and profile.opt_ins == []


def test_unusable_trait_values_are_left_out_rather_than_failing() -> None:
    profile = profile_from_traits(
        {
            "email": "not-an-email",
            "phone": "12",
            "country": "Germany",
            "timezone": "Mars/Base",
            "currency": "euro",
            "birthday": "soon",
            "firstName": "Ana",
            "first_name": "Ignored",
        },
        identities=[],
        seen_at=RECEIVED,
    )
    customer = profile.customer
    assert customer.email is None and customer.phone is None and customer.country is None
    assert customer.timezone is None and customer.currency is None and customer.birthday is None
    assert customer.first_name == "Ana"


def test_consent_traits_only_count_when_explicit_and_an_opt_out_wins() -> None:
    assert consent_statements({"emailOptIn": True, "sms_opt_in": False}) == (["sms"], ["email"])
    assert consent_statements({"emailOptIn": "yes", "acceptsMarketing": 1}) == ([], [])
    assert consent_statements({"emailOptIn": True, "unsubscribed": True}) == (["email"], [])
    assert consent_statements({"email_opt_in": True, "acceptsMarketing": False}) == (["email"], [])
    profile = profile_from_traits(
        {"smsOptIn": False, "emailOptIn": True}, identities=[], seen_at=RECEIVED
    )
    assert {channel: consent.status for channel, consent in profile.customer.consents.items()} == {
        "sms": "unsubscribed"
    }
    assert profile.opt_ins == ["email"]
    assert profile.customer.attributes is None  # consent traits are not attributes
