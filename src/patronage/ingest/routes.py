"""Inbound webhooks: the Shopify endpoint."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel

from patronage.api.deps import DbSession
from patronage.ingest.webhooks import ShopifyDelivery, receive_shopify_webhook

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

_PROBLEMS: dict[int | str, dict[str, object]] = {
    401: {"description": "Missing or wrong signature, or no such store (indistinguishable)"},
    409: {"description": "A refund for an order not received yet; Shopify retries it later"},
    422: {"description": "A field of the payload cannot be read; the problem names it"},
}


class WebhookReceiptOut(BaseModel):
    """The answer to a delivery; any 2xx tells Shopify not to send it again."""

    status: str  # processed | duplicate | ignored
    topic: str
    delivery_id: str
    result: str


async def raw_body(request: Request) -> bytes:
    """The body exactly as sent: the signature covers these bytes, not a re-encoding of them."""
    return await request.body()


_SHOPIFY_BODY: dict[str, object] = {
    "requestBody": {
        "required": True,
        "description": "The resource of the topic (order, refund, customer, checkout) as JSON",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


@router.post(
    "/shopify/{store_id}",
    response_model=WebhookReceiptOut,
    responses=_PROBLEMS,
    openapi_extra=_SHOPIFY_BODY,
)
def receive_shopify(
    store_id: str,
    body: Annotated[bytes, Depends(raw_body)],
    session: DbSession,
    x_shopify_topic: Annotated[str | None, Header()] = None,
    x_shopify_hmac_sha256: Annotated[str | None, Header()] = None,
    x_shopify_webhook_id: Annotated[str | None, Header()] = None,
) -> WebhookReceiptOut:
    """Receive a Shopify webhook (orders, refunds, customers, checkouts) for the store."""
    outcome = receive_shopify_webhook(
        session,
        store_reference=store_id,
        delivery=ShopifyDelivery(
            body=body,
            topic=x_shopify_topic,
            signature=x_shopify_hmac_sha256,
            webhook_id=x_shopify_webhook_id,
        ),
    )
    return WebhookReceiptOut(
        status=outcome.status,
        topic=outcome.topic,
        delivery_id=outcome.delivery_id,
        result=outcome.result,
    )
