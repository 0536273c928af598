"""Customer 360 read API."""

from __future__ import annotations

from fastapi import APIRouter, Query

from patronage.api.deps import DbSession, SecretStoreId
from patronage.customers.profile import customer_360, find_customer_id_by_email
from patronage.customers.schemas import CustomerOut

router = APIRouter(prefix="/v1/customers", tags=["customers"])

_PROBLEMS: dict[int | str, dict[str, object]] = {
    401: {"description": "Missing or invalid secret key"},
    404: {"description": "No such customer in this store"},
}


@router.get("/{customer_id}", response_model=CustomerOut, responses=_PROBLEMS)
def read_customer(customer_id: int, store_id: SecretStoreId, session: DbSession) -> CustomerOut:
    """The customer 360: profile, identities, consent, orders with timelines, recent events."""
    return customer_360(session, store_id, customer_id)


@router.get("", response_model=CustomerOut, responses=_PROBLEMS)
def find_customer(
    store_id: SecretStoreId, session: DbSession, email: str = Query(..., min_length=3)
) -> CustomerOut:
    """Look a customer up by email and return their 360 view."""
    return customer_360(session, store_id, find_customer_id_by_email(session, store_id, email))
