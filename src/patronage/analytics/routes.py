"""Store KPIs over HTTP."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Query

from patronage.analytics.engines import DatabaseEngine
from patronage.analytics.kpis import KpiQuery, store_kpis
from patronage.api.deps import DbSession, SecretStoreId
from patronage.errors import ValidationFailedError
from patronage.stores.service import get_store

router = APIRouter(prefix="/v1/analytics", tags=["analytics"])

_PROBLEMS: dict[int | str, dict[str, object]] = {
    401: {"description": "Missing or invalid secret key"},
    422: {"description": "A bad period or market"},
}


@router.get("/kpis", responses=_PROBLEMS)
def read_kpis(
    store_id: SecretStoreId,
    session: DbSession,
    start: date | None = Query(None, alias="from", description="First day (UTC), inclusive."),
    end: date | None = Query(None, alias="to", description="Last day (UTC), inclusive."),
    market: str | None = Query(None, min_length=2, max_length=2, description="Country code."),
) -> dict[str, Any]:
    """The store's KPIs for a period (default: the last 365 days) and optionally one market."""
    store = get_store(session, store_id)
    try:
        query = KpiQuery.for_dates(
            store_id, start=start, end=end, market=market, currency=store.base_currency
        )
    except ValueError as error:
        raise ValidationFailedError(str(error), field="from") from error
    return store_kpis(DatabaseEngine(session), query)
