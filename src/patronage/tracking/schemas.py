"""Segment / RudderStack messages: body decoding, size limits and the canonical message shape."""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import orjson

from patronage.customers.schemas import ConsentIn, CustomerIn, normalise_email
from patronage.errors import PatronageError
from patronage.kit.money import is_currency_code
from patronage.kit.phones import to_e164
from patronage.kit.times import check_timezone, parse_date, parse_timestamp

MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
MESSAGE_TYPES = frozenset({"identify", "track", "page", "screen", "group", "alias"})
TRACKING_SOURCE = "tracking"

_MAX_IDENTIFIER_LENGTH = 200  # events.user_id / events.anonymous_id
_MAX_MESSAGE_ID_LENGTH = 128  # events.message_id
_MAX_NAME_LENGTH = 200  # events.name
_GENERATED_PREFIX = "gen-"
_HASHED_PREFIX = "hash-"
# Transport fields that differ between retries of the same message; left out of generated ids.
_VOLATILE_FIELDS = frozenset({"sentAt", "receivedAt", "writeKey", "_metadata"})


class PayloadTooLargeError(PatronageError):
    """The request body is larger than the intake accepts."""

    status_code = 413
    title = "Content too large"


class MalformedPayloadError(PatronageError):
    """The request body cannot be read as a batch of messages."""

    status_code = 400
    title = "Bad request"


class UnsupportedEncodingError(PatronageError):
    """The body is compressed with an encoding the intake does not know."""

    status_code = 415
    title = "Unsupported media type"


class InvalidMessageError(ValueError):
    """One message cannot be accepted; the rest of its batch still is."""


@dataclass(slots=True)
class TrackingMessage:
    """One message in canonical form, ready to become an event row."""

    message_id: str
    type: str
    user_id: str | None
    anonymous_id: str | None
    name: str | None
    properties: dict[str, Any]
    context: dict[str, Any]
    occurred_at: datetime
    received_at: datetime
    traits: dict[str, Any] = field(default_factory=dict)


# --- The request body ---------------------------------------------------------------------------


def decode_body(raw: bytes, content_encoding: str | None) -> bytes:
    """Undo `Content-Encoding` (gzip, deflate or none), refusing bodies over MAX_BATCH_BYTES."""
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("", "identity"):
        data = raw
    elif encoding in ("gzip", "x-gzip", "deflate"):
        window = 16 + zlib.MAX_WBITS if encoding != "deflate" else zlib.MAX_WBITS
        decompressor = zlib.decompressobj(window)
        try:
            data = decompressor.decompress(raw, MAX_BATCH_BYTES + 1)
        except zlib.error as error:
            raise MalformedPayloadError(
                f"the body is not valid {encoding} data", code="invalid_request",
                message="invalid compressed body",
            ) from error  # fmt: skip
        if len(data) <= MAX_BATCH_BYTES and not decompressor.eof:
            raise MalformedPayloadError(
                f"the {encoding} body is truncated", code="invalid_request",
                message="truncated compressed body",
            )  # fmt: skip
    else:
        raise UnsupportedEncodingError(
            f"Content-Encoding {content_encoding!r} is not supported; send gzip or none",
            code="unsupported_encoding", message="unsupported Content-Encoding",
        )  # fmt: skip
    if len(data) > MAX_BATCH_BYTES:
        raise PayloadTooLargeError(
            f"the batch is larger than {MAX_BATCH_BYTES // 1024} KB after decompression; "
            "send fewer messages per request",
            code="payload_too_large", message="batch exceeds 500 KB",
        )  # fmt: skip
    return data


def _load_object(data: bytes) -> dict[str, Any]:
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise MalformedPayloadError(
            f"the body is not valid JSON: {error}", code="invalid_json", message="invalid JSON"
        ) from error
    if not isinstance(document, dict):
        raise MalformedPayloadError(
            "the body must be a JSON object", code="invalid_request", message="not an object"
        )
    return document


def parse_batch(data: bytes) -> tuple[list[Any], Any]:
    """Read a `/v1/batch` body; return its messages and its `sentAt`."""
    document = _load_object(data)
    messages = document.get("batch")
    if not isinstance(messages, list):
        raise MalformedPayloadError(
            'the body must hold a "batch" list of messages', code="invalid_request",
            message="missing batch",
        )  # fmt: skip
    if len(data) > MAX_MESSAGE_BYTES:
        _check_message_sizes(messages)
    return messages, document.get("sentAt")


def parse_single(data: bytes, message_type: str) -> tuple[list[Any], Any]:
    """Read a `/v1/track`-style body holding one message; the path gives its type."""
    document = _load_object(data)
    document["type"] = message_type
    if len(data) > MAX_MESSAGE_BYTES:
        _check_message_sizes([document])
    return [document], document.get("sentAt")


def _check_message_sizes(messages: list[Any]) -> None:
    for index, message in enumerate(messages):
        size = len(orjson.dumps(message))
        if size > MAX_MESSAGE_BYTES:
            message_id = message.get("messageId") if isinstance(message, dict) else None
            raise MalformedPayloadError(
                f"message {index} (messageId {message_id!r}) is {size:,} bytes; the limit is "
                f"{MAX_MESSAGE_BYTES // 1024} KB a message",
                code="message_too_large", message="message exceeds 32 KB",
            )  # fmt: skip


# --- One message ----------------------------------------------------------------------------------


def generated_message_id(raw: dict[str, Any]) -> str:
    """A deterministic id for a message that came without `messageId`: a hash of its content."""
    content = {key: value for key, value in raw.items() if key not in _VOLATILE_FIELDS}
    digest = hashlib.blake2b(orjson.dumps(content, option=orjson.OPT_SORT_KEYS), digest_size=16)
    return _GENERATED_PREFIX + digest.hexdigest()


def parse_moment(value: Any) -> datetime | None:
    """Parse an ISO 8601 timestamp into aware UTC; anything unreadable gives None."""
    if not isinstance(value, str):
        return None
    try:
        return parse_timestamp(value)
    except (ValueError, OverflowError):
        return None


def normalise_message(
    raw: Any, *, sent_at: datetime | None, received_at: datetime
) -> TrackingMessage:
    """Check one raw message and return it in canonical form; raise InvalidMessageError."""
    if not isinstance(raw, dict):
        raise InvalidMessageError("a message must be a JSON object")
    kind = raw.get("type")
    if not isinstance(kind, str) or kind.lower() not in MESSAGE_TYPES:
        raise InvalidMessageError(f"unknown message type {kind!r}")
    kind = kind.lower()
    user_id = _identifier(raw.get("userId"), "userId")
    anonymous_id = _identifier(raw.get("anonymousId"), "anonymousId")
    if user_id is None and anonymous_id is None:
        raise InvalidMessageError("a message needs a userId or an anonymousId")
    properties = _object(raw.get("properties"), "properties")
    context = _object(raw.get("context"), "context")
    traits: dict[str, Any] = {}
    name: str | None = None
    if kind == "track":
        event = raw.get("event")
        if not isinstance(event, str) or not event.strip():
            raise InvalidMessageError("a track message needs an event name")
        name = event.strip()
    elif kind in ("page", "screen"):
        page_name = raw.get("name")
        name = (page_name.strip() or None) if isinstance(page_name, str) else None
        category = raw.get("category")
        if isinstance(category, str) and category and "category" not in properties:
            properties = {**properties, "category": category}
    elif kind == "identify":
        context_traits = context.get("traits")
        traits = {
            **(context_traits if isinstance(context_traits, dict) else {}),
            **_object(raw.get("traits"), "traits"),
        }
        properties = traits
    elif kind == "group":
        group_id = _identifier(raw.get("groupId"), "groupId")
        if group_id is None:
            raise InvalidMessageError("a group message needs a groupId")
        name = group_id
        properties = {"groupId": group_id, "traits": _object(raw.get("traits"), "traits")}
    else:  # alias
        previous_id = _identifier(raw.get("previousId"), "previousId")
        if previous_id is None or user_id is None:
            raise InvalidMessageError("an alias message needs a userId and a previousId")
        properties = {"previousId": previous_id}
    occurred_at = (
        parse_moment(raw.get("timestamp"))
        or parse_moment(raw.get("originalTimestamp"))
        or parse_moment(raw.get("sentAt"))
        or sent_at
        or received_at
    )
    return TrackingMessage(
        message_id=_message_id(raw),
        type=kind,
        user_id=user_id,
        anonymous_id=anonymous_id,
        name=name[:_MAX_NAME_LENGTH] if name else None,
        properties=properties,
        context=context,
        occurred_at=occurred_at,
        received_at=received_at,
        traits=traits,
    )


def _message_id(raw: dict[str, Any]) -> str:
    value = raw.get("messageId")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        return generated_message_id(raw)
    value = value.strip()
    if len(value) > _MAX_MESSAGE_ID_LENGTH:
        return _HASHED_PREFIX + hashlib.blake2b(value.encode(), digest_size=16).hexdigest()
    return value


def _identifier(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidMessageError(f"{name} must be a string")
    text = value.strip() if isinstance(value, str) else str(value)
    if len(text) > _MAX_IDENTIFIER_LENGTH:
        raise InvalidMessageError(f"{name} is longer than {_MAX_IDENTIFIER_LENGTH} characters")
    return text or None


def _object(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidMessageError(f"{name} must be a JSON object")
    return value


# --- Identify traits → customer profile -----------------------------------------------------------

# Traits that fill profile columns; every other trait is kept in the customer's attributes.
_PROFILE_TRAITS = frozenset({
    "email", "phone", "firstName", "first_name", "lastName", "last_name", "name", "birthday",
    "country", "language", "timezone", "currency",
})  # fmt: skip

# Explicit consent statements, by channel. Only JSON booleans count.
CONSENT_TRAITS: dict[str, tuple[str, ...]] = {
    "email": ("emailOptIn", "email_opt_in", "emailConsent", "email_consent", "acceptsMarketing",
              "accepts_marketing", "acceptsEmailMarketing", "accepts_email_marketing"),
    "sms": ("smsOptIn", "sms_opt_in", "smsConsent", "sms_consent", "acceptsSmsMarketing",
            "accepts_sms_marketing"),
    "whatsapp": ("whatsappOptIn", "whatsapp_opt_in", "whatsappConsent", "whatsapp_consent"),
    "push": ("pushOptIn", "push_opt_in"),
}  # fmt: skip
_UNSUBSCRIBED_TRAIT = "unsubscribed"  # `unsubscribed: true` opts out of email
_CONSENT_TRAIT_NAMES = frozenset(
    {name for names in CONSENT_TRAITS.values() for name in names} | {_UNSUBSCRIBED_TRAIT}
)


@dataclass(slots=True)
class IdentifyProfile:
    """What an identify call says about the customer."""

    customer: CustomerIn
    opt_ins: list[str]  # channels the traits opt into (recorded only where nothing is known)


def profile_from_traits(
    traits: dict[str, Any], *, identities: list[tuple[str, str]], seen_at: datetime
) -> IdentifyProfile:
    """Map identify traits onto a CustomerIn; opt-outs become consents, opt-ins are returned."""
    address = traits.get("address")
    address = address if isinstance(address, dict) else {}
    country = _country(traits.get("country")) or _country(address.get("country"))
    first_name = _text(traits.get("firstName")) or _text(traits.get("first_name"))
    last_name = _text(traits.get("lastName")) or _text(traits.get("last_name"))
    full_name = _text(traits.get("name"))
    if full_name and not first_name and not last_name:
        first_name, _, rest = full_name.partition(" ")
        last_name = rest.strip() or None
    attributes = {
        key: value
        for key, value in traits.items()
        if key not in _PROFILE_TRAITS and key not in _CONSENT_TRAIT_NAMES
    }
    opt_outs, opt_ins = consent_statements(traits)
    customer = CustomerIn(
        source=TRACKING_SOURCE,
        email=_email(traits.get("email")),
        phone=_phone(traits.get("phone"), country),
        first_name=first_name[:200] if first_name else None,
        last_name=last_name[:200] if last_name else None,
        country=country,
        language=_language(traits.get("language")),
        timezone=_timezone(traits.get("timezone")),
        currency=_currency(traits.get("currency")),
        birthday=_birthday(traits.get("birthday")),
        attributes=attributes or None,
        identities=identities,
        consents={
            channel: ConsentIn("unsubscribed", TRACKING_SOURCE, seen_at) for channel in opt_outs
        },
        seen_at=seen_at,
    )
    return IdentifyProfile(customer, opt_ins)


def consent_statements(traits: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Return the channels the traits explicitly opt out of and those they opt into."""
    opt_outs: list[str] = []
    opt_ins: list[str] = []
    for channel, names in CONSENT_TRAITS.items():
        values = {traits[name] for name in names if isinstance(traits.get(name), bool)}
        if False in values:
            opt_outs.append(channel)  # an opt-out wins over a contradicting opt-in
        elif True in values:
            opt_ins.append(channel)
    if traits.get(_UNSUBSCRIBED_TRAIT) is True:
        if "email" in opt_ins:
            opt_ins.remove("email")
        if "email" not in opt_outs:
            opt_outs.append("email")
    return opt_outs, opt_ins


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    return None


def _email(value: Any) -> str | None:
    try:
        return normalise_email(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _phone(value: Any, country: str | None) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    try:
        return to_e164(value, country)
    except ValueError:
        return None


def _country(value: Any) -> str | None:
    text = _text(value)
    if text and len(text) == 2 and text.isascii() and text.isalpha():
        return text.upper()
    return None


def _language(value: Any) -> str | None:
    text = _text(value)
    return text if text and len(text) <= 16 else None


def _timezone(value: Any) -> str | None:
    text = _text(value)
    if not text:
        return None
    try:
        return check_timezone(text)
    except ValueError:
        return None


def _currency(value: Any) -> str | None:
    text = _text(value)
    return text.upper() if text and is_currency_code(text.upper()) else None


def _birthday(value: Any) -> date | None:
    text = _text(value)
    if not text:
        return None
    try:
        return parse_date(text)
    except ValueError:
        return None
