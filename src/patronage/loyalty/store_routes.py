"""Store-wide membership API: the program and its versions, the rewards catalog, the notice
outbox, referrals and coupons."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from patronage.api.deps import DbSession, SecretStoreId
from patronage.api.problems import problem
from patronage.errors import NotFoundError, PatronageError
from patronage.kit.clock import utcnow
from patronage.loyalty.ledger import idempotent
from patronage.loyalty.notices import list_notices, mark_processed
from patronage.loyalty.program import (
    Program,
    program_from_document,
    program_from_json,
    program_from_yaml,
    program_to_yaml,
    program_version,
    program_versions,
    require_program,
    set_program,
)
from patronage.loyalty.referrals import record_referral, referral_view
from patronage.loyalty.rewards import catalog, coupon_status, use_coupon
from patronage.loyalty.routes import IdempotencyKey, mark_replayed, require_key, unit_of_work
from patronage.loyalty.schemas import (
    CatalogOut,
    CouponStatusOut,
    CouponUseIn,
    NoticesOut,
    NoticesProcessedIn,
    NoticesProcessedOut,
    ProgramOut,
    ProgramVersionOut,
    ProgramVersionsOut,
    ReferralIn,
    ReferralOut,
)
from patronage.stores.models import Store

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")

_READ: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid secret key"},
    404: {"description": "Not found in this store, or no membership program"},
}
_WRITE: dict[int | str, dict[str, Any]] = {
    **_READ,
    400: {"description": "Missing Idempotency-Key header"},
    409: {"description": "Refused by the current state, or an idempotency key reused"},
    422: {"description": "Invalid request; every problem is named"},
}

program_router = APIRouter(prefix="/v1/loyalty", tags=["loyalty program"])
referrals_router = APIRouter(prefix="/v1/referrals", tags=["referrals"])
coupons_router = APIRouter(prefix="/v1/coupons", tags=["coupons"])


def _program_out(session: DbSession, store_id: int, version: int | None) -> ProgramOut:
    found = program_version(session, store_id, version)
    if found is None:
        if version is not None:
            raise NotFoundError(f"the program has no version {version}")
        require_program(session, store_id)  # raises ProgramNotConfiguredError (404)
        raise AssertionError("unreachable")
    return ProgramOut(
        version=found.version,
        source=found.source,
        created_at=found.created_at,
        program=program_from_document(found.document).model_dump(mode="json"),
    )


def _wants_yaml(format_: str | None, accept: str | None) -> bool:
    if format_ is not None:
        return format_ == "yaml"
    return any(kind in (accept or "") for kind in YAML_TYPES)


@program_router.get(
    "/program",
    response_model=ProgramOut,
    responses={
        **_READ,
        200: {"content": {"application/yaml": {}}, "description": "The program"},
    },
)
def read_program(
    store_id: SecretStoreId,
    session: DbSession,
    version: Annotated[int | None, Query(ge=1, description="An older version")] = None,
    format_: Annotated[Literal["json", "yaml"] | None, Query(alias="format")] = None,
    accept: Annotated[str | None, Header()] = None,
) -> Any:
    """The program in force (or `version`), as JSON, or as YAML with `Accept: application/yaml`
    or `?format=yaml` (the version is then in the `Program-Version` header)."""
    found = _program_out(session, store_id, version)
    if _wants_yaml(format_, accept):
        text = program_to_yaml(program_from_document(found.program))
        return Response(
            content=f"# version {found.version}\n{text}",
            media_type="application/yaml",
            headers={"Program-Version": str(found.version)},
        )
    return found


async def _raw_body(request: Request) -> bytes:
    return await request.body()


def _parse_program(body: bytes, content_type: str | None) -> Program:
    kind = (content_type or "application/json").split(";")[0].strip().lower()
    if not body.strip():
        raise _EmptyBodyError("send the program as JSON or YAML in the request body")
    if kind in YAML_TYPES:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as error:
            raise _EmptyBodyError("the program must be UTF-8 text") from error
        return program_from_yaml(text)
    if kind == "application/json" or kind.endswith("+json"):
        return program_from_json(body)
    raise _UnsupportedMediaTypeError(
        f"send the program as application/json or application/yaml, not {kind}"
    )


class _EmptyBodyError(PatronageError):
    status_code = 422
    title = "Unprocessable content"


class _UnsupportedMediaTypeError(PatronageError):
    status_code = 415
    title = "Unsupported media type"


@program_router.put(
    "/program",
    response_model=ProgramOut,
    responses={
        **_WRITE,
        415: {"description": "Neither JSON nor YAML"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/yaml": {"schema": {"type": "string"}},
            },
        }
    },
)
def write_program(
    store_id: SecretStoreId,
    session: DbSession,
    response: Response,
    body: Annotated[bytes, Depends(_raw_body)],
    content_type: Annotated[str | None, Header()] = None,
    idempotency_key: IdempotencyKey = None,
) -> ProgramOut:
    """Validate the program (JSON or YAML) and store it as the next version, in force at once.

    A program that does not validate is refused with every problem named by its field
    (`tiers.1.entry.min_spend: …`). Every ledger entry from now on records the new version.
    """
    key = require_key(idempotency_key)
    program = _parse_program(body, content_type)
    document = program.model_dump(mode="json")

    def work() -> dict[str, Any]:
        version = set_program(session, store_id, program, source="api")
        return _program_out(session, store_id, version).model_dump(mode="json")

    with unit_of_work(session):
        result, replayed = idempotent(
            session,
            store_id=store_id,
            key=key,
            request={"operation": "program", "program": document},
            work=work,
        )
    mark_replayed(response, replayed)
    return ProgramOut.model_validate(result)


@program_router.get("/program/versions", response_model=ProgramVersionsOut, responses=_READ)
def read_program_versions(store_id: SecretStoreId, session: DbSession) -> ProgramVersionsOut:
    """Every stored version of the program, newest first (fetch one with `?version=`)."""
    versions = program_versions(session, store_id)
    if not versions:
        require_program(session, store_id)
    return ProgramVersionsOut(
        versions=[
            ProgramVersionOut(
                version=item.version,
                source=item.source,
                created_at=item.created_at,
                in_force=index == 0,
            )
            for index, item in enumerate(versions)
        ]
    )


@program_router.get("/rewards", response_model=CatalogOut, responses=_READ)
def read_rewards(store_id: SecretStoreId, session: DbSession) -> CatalogOut:
    """The rewards catalog with points costs, and the points + cash rule."""
    version, program = require_program(session, store_id)
    store = session.get(Store, store_id)
    currency = store.base_currency if store else "USD"
    return catalog(program, version=version, currency=currency)


@program_router.get("/notices", response_model=NoticesOut, responses=_READ)
def read_notices(
    store_id: SecretStoreId,
    session: DbSession,
    pending: Annotated[bool, Query(description="Only notices not yet processed")] = True,
    kind: Annotated[str | None, Query(max_length=40)] = None,
    after_id: Annotated[int | None, Query(ge=0)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> NoticesOut:
    """The store's outbox of notices (expiry reminders, tier changes …), oldest first."""
    return list_notices(
        session,
        store_id=store_id,
        pending_only=pending,
        kind=kind,
        after_id=after_id,
        limit=limit,
    )


@program_router.post("/notices/processed", response_model=NoticesProcessedOut, responses=_WRITE)
def notices_processed(
    processed_in: NoticesProcessedIn,
    store_id: SecretStoreId,
    session: DbSession,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> NoticesProcessedOut:
    """Mark notices handled, so the outbox no longer lists them as pending."""
    key = require_key(idempotency_key)
    moment = utcnow()

    def work() -> dict[str, Any]:
        count = mark_processed(session, store_id=store_id, ids=processed_in.ids, now=moment)
        return {"processed": count}

    with unit_of_work(session):
        result, replayed = idempotent(
            session,
            store_id=store_id,
            key=key,
            request={"operation": "notices_processed", "ids": sorted(set(processed_in.ids))},
            work=work,
            now=moment,
        )
    mark_replayed(response, replayed)
    return NoticesProcessedOut.model_validate(result)


@referrals_router.post(
    "",
    response_model=ReferralOut,
    status_code=201,
    responses={**_WRITE, 409: {"description": "Blocked as likely fraud (the reason is given)"}},
)
def create_referral(
    referral_in: ReferralIn,
    store_id: SecretStoreId,
    session: DbSession,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Record a friend who signed up with a member's code.

    The referrer is rewarded once the friend's first order has passed the return window. A
    referral that looks like fraud (the same customer, email, phone, address or device as the
    referrer, a friend who had already ordered, too many from one source in a week) is recorded
    as blocked and refused with 409, the reason in `detail`.
    """
    key = require_key(idempotency_key)

    def work() -> dict[str, Any]:
        outcome = record_referral(
            session,
            store_id=store_id,
            code=referral_in.code,
            referred_customer_id=referral_in.customer_id,
            source=referral_in.source,
            device_id=referral_in.device_id,
            address=referral_in.address,
        )
        view = referral_view(session, store_id=store_id, referral_id=outcome.referral_id)
        return view.model_dump(mode="json")

    with unit_of_work(session):
        result, replayed = idempotent(
            session,
            store_id=store_id,
            key=key,
            request={"operation": "referral", **referral_in.model_dump(mode="json")},
            work=work,
        )
    if result["status"] == "blocked":
        blocked: JSONResponse = problem(
            409,
            "Referral blocked",
            result["reason"] or "blocked",
            referral_id=result["referral_id"],
        )
        mark_replayed(blocked, replayed)
        return blocked
    mark_replayed(response, replayed)
    return ReferralOut.model_validate(result)


@coupons_router.get("/{code}", response_model=CouponStatusOut, responses=_READ)
def read_coupon(code: str, store_id: SecretStoreId, session: DbSession) -> CouponStatusOut:
    """Whether a coupon can be used now (`valid`), its value and expiry, and why not."""
    return coupon_status(session, store_id=store_id, code=code, now=utcnow())


@coupons_router.post(
    "/{code}/use",
    response_model=CouponStatusOut,
    responses={**_WRITE, 409: {"description": "Already used or expired (the reason is given)"}},
)
def use_coupon_at_checkout(
    code: str,
    use_in: CouponUseIn,
    store_id: SecretStoreId,
    session: DbSession,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> CouponStatusOut:
    """Use a single-use coupon for an order; a second use or an expired coupon is 409."""
    key = require_key(idempotency_key)
    moment = utcnow()

    def work() -> dict[str, Any]:
        used = use_coupon(
            session, store_id=store_id, code=code, now=moment, reference=use_in.order_reference
        )
        return used.model_dump(mode="json")

    with unit_of_work(session):
        result, replayed = idempotent(
            session,
            store_id=store_id,
            key=key,
            request={
                "operation": "coupon_use",
                "code": code.strip().upper(),
                "order_reference": use_in.order_reference,
            },
            work=work,
            now=moment,
        )
    mark_replayed(response, replayed)
    return CouponStatusOut.model_validate(result)
