"""Bonus actions, referral codes and notices of a member through the API."""

from __future__ import annotations

import uuid
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from patronage.customers.schemas import CustomerIn
from patronage.customers.service import resolve_customers
from patronage.db.session import session_scope
from patronage.kit.clock import utcnow
from patronage.loyalty.orders import expire_due
from patronage.stores.service import NewStore, create_store

PROBLEM = "application/problem+json"


def _headers(store: NewStore, key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {store.secret_key}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


def _customer(engine: Engine, store: NewStore, **values: object) -> int:
    with session_scope(engine) as session:
        values.setdefault("email", f"c-{uuid.uuid4().hex[:8]}@example.com")
        return resolve_customers(session, store.store.id, [CustomerIn(source="test", **values)])[
            0
        ].customer_id


def _other_store(engine: Engine) -> NewStore:
    with session_scope(engine) as session:
        return create_store(session, name=f"Other {uuid.uuid4().hex[:6]}", base_currency="USD")


def test_bonus_actions_by_type_once_per_period_and_capped(
    api_client: TestClient, live_member: tuple[NewStore, int]
) -> None:
    store, customer = live_member
    path = f"/v1/members/{customer}/actions"
    signup = api_client.post(path, headers=_headers(store, "a-1"), json={"action": "signup"})
    assert signup.status_code == 201, signup.text
    assert (signup.json()["points"], signup.json()["available"]) == (100, 100)
    replay = api_client.post(path, headers=_headers(store, "a-1"), json={"action": "signup"})
    assert replay.json() == signup.json() and replay.headers["Idempotent-Replayed"] == "true"
    again = api_client.post(path, headers=_headers(store, "a-2"), json={"action": "signup"})
    assert again.status_code == 409 and again.headers["content-type"].startswith(PROBLEM)
    assert again.json()["detail"] == "the signup bonus was already awarded"

    points = []
    for number, variant in enumerate(["text", "photo", "video", "video", "video", "video"]):
        review = api_client.post(
            path,
            headers=_headers(store, f"review-{number}"),
            json={"action": "review", "variant": variant},
        )
        assert review.status_code == 201, review.text
        points.append((review.json()["points"], review.json()["capped"]))
    # The daily cap of 1,000 bonus points includes the sign-up's 100.
    assert points == [(50, False), (100, False), (200, False), (200, False), (200, False),
                      (150, True)]  # fmt: skip

    birthday = api_client.post(path, headers=_headers(store, "b-1"), json={"action": "birthday"})
    assert birthday.status_code == 201 and birthday.json()["points"] == 0
    assert birthday.json()["capped"] is True

    unknown = api_client.post(path, headers=_headers(store, "u-1"), json={"action": "dance"})
    assert unknown.status_code == 422
    assert "no bonus action 'dance'" in unknown.json()["detail"]
    variant = api_client.post(
        path, headers=_headers(store, "u-2"), json={"action": "review", "variant": "poem"}
    )
    assert variant.status_code == 422 and "unknown variant 'poem'" in variant.json()["detail"]
    extra = api_client.post(path, headers=_headers(store, "u-3"), json={"action": "x", "y": 1})
    assert extra.status_code == 422 and extra.json()["errors"][0]["location"] == "body.y"
    keyless = api_client.post(path, headers=_headers(store), json={"action": "signup"})
    assert keyless.status_code == 400


def test_referral_code_referrals_and_fraud_blocks(
    api_client: TestClient, engine: Engine, live_member: tuple[NewStore, int]
) -> None:
    store, referrer = live_member
    mine = api_client.get(f"/v1/members/{referrer}/referral", headers=_headers(store))
    assert mine.status_code == 200, mine.text
    code = mine.json()["code"]
    assert code.startswith("R") and len(code) == 8 and mine.json()["referrals"] == []
    assert (
        api_client.get(f"/v1/members/{referrer}/referral", headers=_headers(store)).json()["code"]
        == code
    )

    friend = _customer(engine, store)
    body = {"code": code.lower(), "customer_id": friend, "source": "203.0.113.9"}
    made = api_client.post("/v1/referrals", headers=_headers(store, "ref-1"), json=body)
    assert made.status_code == 201, made.text
    assert (made.json()["status"], made.json()["referrer_customer_id"]) == ("pending", referrer)
    replay = api_client.post("/v1/referrals", headers=_headers(store, "ref-1"), json=body)
    assert replay.json() == made.json() and replay.headers["Idempotent-Replayed"] == "true"

    twin = _customer(engine, store)
    blocked = api_client.post(
        "/v1/referrals",
        headers=_headers(store, "ref-2"),
        json={"code": code, "customer_id": referrer},
    )
    assert blocked.status_code == 409 and blocked.headers["content-type"].startswith(PROBLEM)
    assert blocked.json()["title"] == "Referral blocked"
    assert blocked.json()["detail"] == (
        "self-referral: the referrer and the friend are the same customer"
    )
    blocked_replay = api_client.post(
        "/v1/referrals",
        headers=_headers(store, "ref-2"),
        json={"code": code, "customer_id": referrer},
    )
    assert blocked_replay.status_code == 409
    assert blocked_replay.headers["Idempotent-Replayed"] == "true"

    unknown_code = api_client.post(
        "/v1/referrals",
        headers=_headers(store, "ref-3"),
        json={"code": "RZZZZZZZ", "customer_id": twin},
    )
    assert unknown_code.status_code == 404
    assert unknown_code.json()["detail"] == "no member has referral code 'RZZZZZZZ'"

    invalid = api_client.post(
        "/v1/referrals", headers=_headers(store, "ref-4"), json={"customer_id": 0, "extra": 1}
    )
    assert invalid.status_code == 422 and invalid.headers["content-type"].startswith(PROBLEM)
    assert {error["location"] for error in invalid.json()["errors"]} == {
        "body.code",
        "body.customer_id",
        "body.extra",
    }
    keyless = api_client.post("/v1/referrals", headers=_headers(store), json=body)
    assert keyless.status_code == 400
    other = _other_store(engine)
    with session_scope(engine) as session:
        from patronage.loyalty.program import default_program, set_program

        set_program(session, other.store.id, default_program(), source="test")
    foreign = api_client.post("/v1/referrals", headers=_headers(other, "ref-1"), json=body)
    assert foreign.status_code == 404 and foreign.headers["content-type"].startswith(PROBLEM)

    listing = api_client.get(f"/v1/members/{referrer}/referral", headers=_headers(store)).json()
    assert listing["counts"] == {"pending": 1, "rewarded": 0, "blocked": 1}
    assert [(r["referred_customer_id"], r["status"]) for r in listing["referrals"]] == [
        (referrer, "blocked"),
        (friend, "pending"),
    ]
    assert listing["referrer_points"] == 500

    notices = api_client.get(
        f"/v1/members/{referrer}/notices?pending=true", headers=_headers(store)
    ).json()
    assert [notice["kind"] for notice in notices["notices"]] == ["referral_blocked"]


def test_notices_list_and_are_marked_processed(
    api_client: TestClient, engine: Engine, live_member: tuple[NewStore, int]
) -> None:
    store, customer = live_member
    earned = api_client.post(
        f"/v1/members/{customer}/points",
        headers=_headers(store, "e-1"),
        json={"kind": "earn", "points": 300, "reason": "welcome"},
    )
    assert earned.status_code == 201
    with session_scope(engine) as session:
        summary = expire_due(session, store.store.id, utcnow() + timedelta(days=360))
    assert summary.reminders == 1

    outbox = api_client.get("/v1/loyalty/notices", headers=_headers(store))
    assert outbox.status_code == 200, outbox.text
    [notice] = outbox.json()["notices"]
    assert (notice["kind"], notice["customer_id"]) == ("points_expiring", customer)
    assert notice["payload"]["points"] == 300 and notice["payload"]["days_before"] == 7
    assert (
        api_client.get("/v1/loyalty/notices?kind=tier_upgraded", headers=_headers(store)).json()[
            "notices"
        ]
        == []
    )

    done = api_client.post(
        "/v1/loyalty/notices/processed",
        headers=_headers(store, "n-1"),
        json={"ids": [notice["id"]]},
    )
    assert done.status_code == 200 and done.json() == {"processed": 1}
    replay = api_client.post(
        "/v1/loyalty/notices/processed",
        headers=_headers(store, "n-1"),
        json={"ids": [notice["id"]]},
    )
    assert replay.json() == {"processed": 1} and replay.headers["Idempotent-Replayed"] == "true"
    assert api_client.get("/v1/loyalty/notices", headers=_headers(store)).json()["notices"] == []
    history = api_client.get(f"/v1/members/{customer}/notices", headers=_headers(store)).json()[
        "notices"
    ]
    assert history[0]["processed_at"] is not None
    empty = api_client.post(
        "/v1/loyalty/notices/processed", headers=_headers(store, "n-2"), json={"ids": []}
    )
    assert empty.status_code == 422 and empty.json()["errors"][0]["location"] == "body.ids"


def test_members_of_another_store_are_not_found(
    api_client: TestClient, engine: Engine, live_member: tuple[NewStore, int]
) -> None:
    _, customer = live_member
    other = _other_store(engine)
    for method, path, body in (
        ("get", f"/v1/members/{customer}/referral", None),
        ("get", f"/v1/members/{customer}/notices", None),
        ("post", f"/v1/members/{customer}/actions", {"action": "signup"}),
    ):
        response = api_client.request(method, path, headers=_headers(other, "k"), json=body)
        assert response.status_code == 404, (path, response.text)
        assert response.headers["content-type"].startswith(PROBLEM)
    # The other store has no program; with one, the customer is still unknown to it.
    with session_scope(engine) as session:
        from patronage.loyalty.program import default_program, set_program

        set_program(session, other.store.id, default_program(), source="test")
    missing = api_client.get(f"/v1/members/{customer}/referral", headers=_headers(other))
    assert missing.status_code == 404
    assert missing.json()["detail"] == f"customer {customer} does not exist in this store"
    assert api_client.get(f"/v1/members/{customer}/notices").status_code == 401
