"""Coupons through the API: check at checkout, use once, refuse a second use or an expired one."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from decimal import Decimal

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from patronage.db.session import session_scope
from patronage.kit.clock import utcnow
from patronage.loyalty.models import LoyaltyMember
from patronage.loyalty.rewards import issue_coupon
from patronage.stores.service import NewStore, create_store

PROBLEM = "application/problem+json"
PARALLEL = 20


def _headers(store: NewStore, key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {store.secret_key}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


def _coupon(api_client: TestClient, store: NewStore, customer: int) -> str:
    earned = api_client.post(
        f"/v1/members/{customer}/points",
        headers=_headers(store, f"earn-{uuid.uuid4().hex}"),
        json={"kind": "earn", "points": 500, "reason": "gift"},
    )
    assert earned.status_code == 201
    redeemed = api_client.post(
        f"/v1/members/{customer}/redemptions",
        headers=_headers(store, f"redeem-{uuid.uuid4().hex}"),
        json={"reward": "coupon-5"},
    )
    assert redeemed.status_code == 201, redeemed.text
    return str(redeemed.json()["coupon"]["code"])


def test_a_coupon_is_checked_and_used_once(
    api_client: TestClient, live_member: tuple[NewStore, int]
) -> None:
    store, customer = live_member
    code = _coupon(api_client, store, customer)
    status = api_client.get(f"/v1/coupons/{code.lower()}", headers=_headers(store))
    assert status.status_code == 200, status.text
    body = status.json()
    assert (body["valid"], body["used"], body["value"], body["currency"]) == (
        True,
        False,
        "5.00",
        "USD",
    )
    assert body["customer_id"] == customer and body["reason"] is None

    used = api_client.post(
        f"/v1/coupons/{code}/use",
        headers=_headers(store, "use-1"),
        json={"order_reference": "#1001"},
    )
    assert used.status_code == 200, used.text
    assert (used.json()["used"], used.json()["valid"], used.json()["used_reference"]) == (
        True,
        False,
        "#1001",
    )
    replay = api_client.post(
        f"/v1/coupons/{code}/use",
        headers=_headers(store, "use-1"),
        json={"order_reference": "#1001"},
    )
    assert replay.status_code == 200 and replay.json() == used.json()
    assert replay.headers["Idempotent-Replayed"] == "true"

    second = api_client.post(
        f"/v1/coupons/{code}/use",
        headers=_headers(store, "use-2"),
        json={"order_reference": "#1002"},
    )
    assert second.status_code == 409 and second.headers["content-type"].startswith(PROBLEM)
    assert second.json()["title"] == "Coupon not redeemable"
    assert second.json()["detail"].startswith(f"coupon {code} was already used on ")
    assert second.json()["detail"].endswith("(order #1001)")
    reused_key = api_client.post(
        f"/v1/coupons/{code}/use",
        headers=_headers(store, "use-1"),
        json={"order_reference": "#1003"},
    )
    assert reused_key.status_code == 409 and "different request" in reused_key.json()["detail"]
    after = api_client.get(f"/v1/coupons/{code}", headers=_headers(store)).json()
    assert after["valid"] is False and after["reason"] == second.json()["detail"]


def test_an_expired_coupon_is_refused_with_its_date(
    api_client: TestClient, engine: Engine, live_member: tuple[NewStore, int]
) -> None:
    store, customer = live_member
    _coupon(api_client, store, customer)
    issued = utcnow() - timedelta(days=100)
    with session_scope(engine) as session:
        member_id = session.scalar(
            select(LoyaltyMember.id).where(LoyaltyMember.customer_id == customer)
        )
        assert member_id is not None
        coupon = issue_coupon(
            session,
            store_id=store.store.id,
            member_id=member_id,
            entry_id=None,
            reward="coupon-5",
            kind="coupon",
            value=Decimal(5),
            currency="USD",
            valid_days=90,
            now=issued,
        )
    code = coupon["code"]
    expiry = (issued + timedelta(days=90)).strftime("%Y-%m-%d")
    status = api_client.get(f"/v1/coupons/{code}", headers=_headers(store)).json()
    assert status["valid"] is False and status["used"] is False
    assert status["reason"].startswith(f"coupon {code} expired on {expiry}")
    refused = api_client.post(
        f"/v1/coupons/{code}/use", headers=_headers(store, "x-1"), json={"order_reference": "A"}
    )
    assert refused.status_code == 409 and refused.json()["detail"] == status["reason"]
    # The refusal stored no key: the same key may be used again.
    assert (
        api_client.post(
            f"/v1/coupons/{code}/use", headers=_headers(store, "x-1"), json={"order_reference": "A"}
        ).json()["detail"]
        == status["reason"]
    )


def test_unknown_and_foreign_coupons_are_not_found(
    api_client: TestClient, engine: Engine, live_member: tuple[NewStore, int]
) -> None:
    store, customer = live_member
    code = _coupon(api_client, store, customer)
    missing = api_client.get("/v1/coupons/PTR-0000-0000", headers=_headers(store))
    assert missing.status_code == 404 and missing.headers["content-type"].startswith(PROBLEM)
    assert missing.json()["detail"] == "no coupon 'PTR-0000-0000' in this store"
    with session_scope(engine) as session:
        other = create_store(session, name=f"Other {uuid.uuid4().hex[:6]}", base_currency="USD")
    assert api_client.get(f"/v1/coupons/{code}", headers=_headers(other)).status_code == 404
    foreign_use = api_client.post(
        f"/v1/coupons/{code}/use", headers=_headers(other, "f-1"), json={"order_reference": "B"}
    )
    assert foreign_use.status_code == 404
    assert api_client.get(f"/v1/coupons/{code}").status_code == 401
    keyless = api_client.post(
        f"/v1/coupons/{code}/use", headers=_headers(store), json={"order_reference": "B"}
    )
    assert keyless.status_code == 400
    invalid = api_client.post(
        f"/v1/coupons/{code}/use", headers=_headers(store, "i-1"), json={"order_reference": ""}
    )
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["location"] == "body.order_reference"
    # Still usable after all the refusals.
    assert api_client.get(f"/v1/coupons/{code}", headers=_headers(store)).json()["valid"] is True


def test_parallel_uses_of_one_coupon_let_exactly_one_through(
    live_server: str, live_member: tuple[NewStore, int]
) -> None:
    store, customer = live_member
    headers = {"Authorization": f"Bearer {store.secret_key}"}
    with httpx.Client(base_url=live_server, headers=headers, timeout=120) as client:
        client.post(
            f"/v1/members/{customer}/points",
            headers={"Idempotency-Key": "fund"},
            json={"kind": "earn", "points": 500, "reason": "gift"},
        )
        code = client.post(
            f"/v1/members/{customer}/redemptions",
            headers={"Idempotency-Key": "coupon"},
            json={"reward": "coupon-5"},
        ).json()["coupon"]["code"]
    barrier = threading.Barrier(PARALLEL)
    responses: list[httpx.Response] = []
    lock = threading.Lock()

    def use(number: int) -> None:
        with httpx.Client(base_url=live_server, headers=headers, timeout=120) as client:
            barrier.wait()
            response = client.post(
                f"/v1/coupons/{code}/use",
                headers={"Idempotency-Key": f"use-{number}"},
                json={"order_reference": f"#{number}"},
            )
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=use, args=(number,)) for number in range(PARALLEL)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [409] * (PARALLEL - 1), [r.text for r in responses]
    [winner] = [r.json() for r in responses if r.status_code == 200]
    refused = [r.json()["detail"] for r in responses if r.status_code == 409]
    assert all(
        detail.endswith(f"(order {winner['used_reference']})") and "already used" in detail
        for detail in refused
    )
