"""The members API: reads, mutations with Idempotency-Key, problems for every refusal."""

from __future__ import annotations

from fastapi.testclient import TestClient

from patronage.stores.service import NewStore

PROBLEM = "application/problem+json"


def _headers(store: NewStore, key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {store.secret_key}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


def test_member_read_earn_redeem_and_ledger(
    api_client: TestClient, live_member: tuple[NewStore, int]
) -> None:
    store, customer = live_member
    fresh = api_client.get(f"/v1/members/{customer}", headers=_headers(store))
    assert fresh.status_code == 200, fresh.text
    body = fresh.json()
    assert (body["enrolled"], body["available"], body["tier"]["name"]) == (False, 0, "bronze")
    assert body["progress"]["text"] == "Spend $500.00 more and place 2 more orders to reach Silver."

    earned = api_client.post(
        f"/v1/members/{customer}/points",
        headers=_headers(store, "earn-1"),
        json={"kind": "earn", "points": 700, "reason": "welcome gift"},
    )
    assert earned.status_code == 201, earned.text
    assert earned.json()["available"] == 700
    replay = api_client.post(
        f"/v1/members/{customer}/points",
        headers=_headers(store, "earn-1"),
        json={"kind": "earn", "points": 700, "reason": "welcome gift"},
    )
    assert replay.status_code == 201 and replay.json() == earned.json()
    assert replay.headers["Idempotent-Replayed"] == "true"

    coupon = api_client.post(
        f"/v1/members/{customer}/redemptions",
        headers=_headers(store, "redeem-1"),
        json={"reward": "coupon-5"},
    )
    assert coupon.status_code == 201, coupon.text
    assert coupon.json()["coupon"]["code"].startswith("PTR-")
    assert coupon.json()["available"] == 200

    ledger = api_client.get(f"/v1/members/{customer}/ledger", headers=_headers(store))
    assert [entry["kind"] for entry in ledger.json()["entries"]] == ["redeem", "earn"]


def test_mutations_need_an_idempotency_key(
    api_client: TestClient, live_member: tuple[NewStore, int]
) -> None:
    store, customer = live_member
    response = api_client.post(
        f"/v1/members/{customer}/points",
        headers=_headers(store),
        json={"kind": "earn", "points": 10, "reason": "x"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith(PROBLEM)
    assert "Idempotency-Key" in response.json()["detail"]


def test_refusals_are_problems(api_client: TestClient, live_member: tuple[NewStore, int]) -> None:
    store, customer = live_member
    poor = api_client.post(
        f"/v1/members/{customer}/redemptions",
        headers=_headers(store, "r-1"),
        json={"reward": "coupon-5"},
    )
    assert poor.status_code == 409 and poor.headers["content-type"].startswith(PROBLEM)
    assert poor.json()["title"] == "Insufficient points"
    assert poor.json()["detail"] == "insufficient points: 0 available, 500 needed"

    api_client.post(
        f"/v1/members/{customer}/points",
        headers=_headers(store, "k"),
        json={"kind": "earn", "points": 10, "reason": "x"},
    )
    reused = api_client.post(
        f"/v1/members/{customer}/points",
        headers=_headers(store, "k"),
        json={"kind": "earn", "points": 11, "reason": "x"},
    )
    assert reused.status_code == 409 and "different request" in reused.json()["detail"]

    invalid = api_client.post(
        f"/v1/members/{customer}/points",
        headers=_headers(store, "k2"),
        json={"kind": "adjust", "points": -5},
    )
    assert invalid.status_code == 422

    missing = api_client.get("/v1/members/987654321", headers=_headers(store))
    assert missing.status_code == 404
    assert missing.json()["detail"] == "customer 987654321 does not exist in this store"

    review = api_client.post(
        f"/v1/members/{customer}/points",
        headers=_headers(store, "review-1"),
        json={"kind": "action", "action": "review", "variant": "video"},
    )
    assert review.status_code == 201 and review.json()["points"] == 200
    signup = api_client.post(
        f"/v1/members/{customer}/points",
        headers=_headers(store, "signup-1"),
        json={"kind": "action", "action": "signup"},
    )
    again = api_client.post(
        f"/v1/members/{customer}/points",
        headers=_headers(store, "signup-2"),
        json={"kind": "action", "action": "signup"},
    )
    assert signup.status_code == 201 and again.status_code == 409
