"""The customer 360 read API: bearer secret key, store isolation, problem+json."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from patronage.customers.schemas import ConsentIn, CustomerIn
from patronage.db.session import session_scope
from patronage.orders.schemas import LineIn, OrderIn
from patronage.orders.service import upsert_orders
from patronage.stores.service import NewStore, create_store, get_store

AT = datetime(2026, 5, 2, 9, 30, tzinfo=UTC)


def _seed(engine: Engine, store: NewStore) -> int:
    with session_scope(engine) as session:
        summary = upsert_orders(
            session,
            get_store(session, store.store.id),
            [
                OrderIn(
                    source="shopify",
                    external_id="7001",
                    name="#1001",
                    currency="USD",
                    placed_at=AT,
                    paid_at=AT,
                    total=Decimal("42.00"),
                    customer=CustomerIn(
                        source="shopify",
                        email="Ana@Example.com".lower(),
                        first_name="Ana",
                        identities=[("shopify", "8509270720648")],
                        consents={"email": ConsentIn("subscribed", "shopify", AT)},
                    ),
                    lines=[LineIn(title="Tea", quantity=1, unit_price=Decimal("42.00"), sku="T1")],
                )
            ],
        )
        from patronage.orders.models import Order

        order = session.get(Order, summary.order_ids[0])
        assert order is not None and order.customer_id is not None
        return order.customer_id


def test_customer_360_by_id_and_email(
    engine: Engine, committed_store: NewStore, api_client: TestClient
) -> None:
    customer_id = _seed(engine, committed_store)
    headers = {"Authorization": f"Bearer {committed_store.secret_key}"}
    body = api_client.get(f"/v1/customers/{customer_id}", headers=headers).json()
    assert body["email"] == "ana@example.com"
    assert {(i["kind"], i["value"]) for i in body["identities"]} == {
        ("email", "ana@example.com"),
        ("shopify", "8509270720648"),
    }
    assert body["consents"][0]["status"] == "subscribed"
    assert body["orders"][0]["total"] == "42.0000"
    assert [step["status"] for step in body["orders"][0]["timeline"]] == ["placed", "paid"]
    by_email = api_client.get("/v1/customers", params={"email": "ANA@example.com"}, headers=headers)
    assert by_email.status_code == 200 and by_email.json()["id"] == customer_id


def test_other_store_key_gets_404_problem(
    engine: Engine, committed_store: NewStore, api_client: TestClient
) -> None:
    customer_id = _seed(engine, committed_store)
    with session_scope(engine) as session:
        other = create_store(session, name="Other", base_currency="EUR")
    response = api_client.get(
        f"/v1/customers/{customer_id}", headers={"Authorization": f"Bearer {other.secret_key}"}
    )
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404


def test_missing_or_wrong_key_is_401(api_client: TestClient, committed_store: NewStore) -> None:
    assert api_client.get("/v1/customers/1").status_code == 401
    wrong = api_client.get(
        "/v1/customers/1", headers={"Authorization": f"Bearer {committed_store.publishable_key}"}
    )
    assert wrong.status_code == 401
    assert wrong.headers["content-type"] == "application/problem+json"


def test_openapi_lists_the_customer_api(api_client: TestClient) -> None:
    paths = api_client.get("/openapi.json").json()["paths"]
    assert "/v1/customers/{customer_id}" in paths and "/v1/customers" in paths
