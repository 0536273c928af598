"""The tracking HTTP API: write-key auth, gzip, limits, problem+json, group commit."""

from __future__ import annotations

import gzip
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from patronage.stores.service import NewStore
from patronage.tracking.schemas import MAX_BATCH_BYTES
from tests.tracking.helpers import basic_auth, stored_events


def _page(message_id: str, **fields: Any) -> dict[str, Any]:
    return {"type": "page", "anonymousId": "a-1", "name": "Home", "messageId": message_id, **fields}


def _post(client: TestClient, path: str, body: object, key: str, **headers: str) -> Any:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return client.post(path, content=content, headers={**basic_auth(key), **headers})


def test_a_batch_is_accepted_with_success_true(
    engine: Engine, committed_store: NewStore, api_client: TestClient
) -> None:
    response = _post(
        api_client,
        "/v1/batch",
        {"batch": [_page("p-1"), _page("p-2")], "sentAt": "2026-07-01T00:00:00Z"},
        committed_store.publishable_key,
    )
    assert response.status_code == 200 and response.json() == {"success": True}
    assert response.headers["content-type"] == "application/json"
    events = stored_events(engine, committed_store.store.id)
    assert [event["message_id"] for event in events] == ["p-1", "p-2"]


def test_a_gzip_batch_is_accepted(
    engine: Engine, committed_store: NewStore, api_client: TestClient
) -> None:
    body = gzip.compress(orjson.dumps({"batch": [_page("p-1")]}))
    response = _post(
        api_client,
        "/v1/batch",
        body,
        committed_store.publishable_key,
        **{"Content-Encoding": "gzip"},
    )
    assert response.json() == {"success": True}
    assert stored_events(engine, committed_store.store.id)[0]["message_id"] == "p-1"


def test_single_message_endpoints(
    engine: Engine, committed_store: NewStore, api_client: TestClient
) -> None:
    key = committed_store.publishable_key
    bodies = {
        "/v1/track": {"userId": "u-1", "event": "Product Viewed", "messageId": "t"},
        "/v1/identify": {"userId": "u-1", "traits": {"email": "ana@example.com"}, "messageId": "i"},
        "/v1/page": {"userId": "u-1", "name": "Home", "messageId": "p"},
        "/v1/screen": {"userId": "u-1", "name": "Cart", "messageId": "s"},
        "/v1/group": {"userId": "u-1", "groupId": "acme", "messageId": "g"},
        "/v1/alias": {"userId": "u-1", "previousId": "a-1", "messageId": "a"},
    }
    for path, body in bodies.items():
        response = _post(api_client, path, body, key)
        assert response.status_code == 200 and response.json() == {"success": True}, path
    events = stored_events(engine, committed_store.store.id)
    assert [(event["message_id"], event["type"]) for event in events] == [
        ("t", "track"),
        ("i", "identify"),
        ("p", "page"),
        ("s", "screen"),
        ("g", "group"),
        ("a", "alias"),
    ]
    assert len({event["customer_id"] for event in events}) == 1


def test_a_wrong_or_missing_write_key_gets_401_problem_json(
    committed_store: NewStore, api_client: TestClient
) -> None:
    batch = {"batch": [_page("p-1")]}
    wrong = _post(api_client, "/v1/batch", batch, "pk_live_wrong")
    assert wrong.status_code == 401
    assert wrong.headers["content-type"] == "application/problem+json"
    problem = wrong.json()
    assert problem["status"] == 401 and problem["title"] == "Unauthorized"
    # Segment's and RudderStack's clients read `code` and `message` from error bodies
    assert problem["code"] == "unauthorized" and "invalid" in problem["message"]
    missing = api_client.post("/v1/batch", content=orjson.dumps(batch))
    assert missing.status_code == 401 and "HTTP Basic" in missing.json()["detail"]
    secret = _post(api_client, "/v1/batch", batch, committed_store.secret_key)
    assert secret.status_code == 401  # the secret key is not a write key


def test_oversized_and_unreadable_bodies_get_problem_json(
    committed_store: NewStore, api_client: TestClient
) -> None:
    key = committed_store.publishable_key
    huge = {
        "batch": [_page(f"p-{number}", properties={"blob": "x" * 30_000}) for number in range(20)]
    }
    too_large = _post(api_client, "/v1/batch", huge, key)
    assert too_large.status_code == 413 and "500 KB" in too_large.json()["detail"]
    assert too_large.headers["content-type"] == "application/problem+json"
    inflating = gzip.compress(b" " * (MAX_BATCH_BYTES + 1))
    bomb = _post(api_client, "/v1/batch", inflating, key, **{"Content-Encoding": "gzip"})
    assert bomb.status_code == 413
    one_big = _post(
        api_client, "/v1/batch", {"batch": [_page("p-1", properties={"blob": "x" * 40_000})]}, key
    )
    assert one_big.status_code == 400 and "32 KB" in one_big.json()["detail"]
    not_json = _post(api_client, "/v1/batch", b"{batch", key)
    assert not_json.status_code == 400 and not_json.json()["code"] == "invalid_json"
    brotli = _post(api_client, "/v1/batch", b"{}", key, **{"Content-Encoding": "br"})
    assert brotli.status_code == 415


def test_invalid_messages_do_not_fail_the_batch(
    engine: Engine, committed_store: NewStore, api_client: TestClient
) -> None:
    batch = {"batch": [_page("p-1"), {"type": "track"}, "junk", {"type": "warp", "userId": "u"}]}
    response = _post(api_client, "/v1/batch", batch, committed_store.publishable_key)
    assert response.status_code == 200 and response.json() == {"success": True}
    assert [e["message_id"] for e in stored_events(engine, committed_store.store.id)] == ["p-1"]


def test_replaying_a_batch_changes_nothing(
    engine: Engine, committed_store: NewStore, api_client: TestClient
) -> None:
    batch = {
        "batch": [
            _page("p-1"),
            {
                "type": "identify",
                "userId": "u-1",
                "anonymousId": "a-1",
                "messageId": "i-1",
                "traits": {"email": "ana@example.com"},
            },
            {
                "type": "track",
                "userId": "u-1",
                "event": "Order Completed",
                "messageId": "o-1",
                "properties": {"order_id": "1001", "total": 12},
            },
        ]
    }
    key = committed_store.publishable_key
    assert _post(api_client, "/v1/batch", batch, key).json() == {"success": True}
    before = stored_events(engine, committed_store.store.id)
    assert _post(api_client, "/v1/batch", batch, key).json() == {"success": True}
    assert stored_events(engine, committed_store.store.id) == before


def test_concurrent_requests_are_committed_together_and_each_answered(
    engine: Engine, committed_store: NewStore, api_client: TestClient
) -> None:
    # given twelve requests at once, one of them invalid JSON
    key = committed_store.publishable_key
    bodies: list[object] = [
        {
            "batch": [
                _page(f"p-{request}-{number}", anonymousId=f"a-{request}") for number in range(25)
            ]
        }
        for request in range(11)
    ]
    bodies.append(b"{broken")

    def send(body: object) -> int:
        return int(_post(api_client, "/v1/batch", body, key).status_code)

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(send, bodies))
    # then every valid request is stored and answered 200, the broken one alone gets 400
    assert statuses == [200] * 11 + [400]
    assert len(stored_events(engine, committed_store.store.id)) == 11 * 25


def test_openapi_documents_the_tracking_endpoints(api_client: TestClient) -> None:
    paths = api_client.get("/openapi.json").json()["paths"]
    for path in ("/v1/batch", "/v1/track", "/v1/identify", "/v1/page", "/v1/screen"):
        assert "post" in paths[path]
    assert "413" in paths["/v1/batch"]["post"]["responses"]


def test_a_failing_batch_in_a_shared_transaction_fails_alone(
    engine: Engine, committed_store: NewStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a writer busy with a first batch while five more queue up, one of which will fail
    from datetime import UTC, datetime

    from patronage.tracking import routes
    from patronage.tracking.intake import Delivery

    release = threading.Event()
    real_ingest = routes.ingest_deliveries

    def ingest(session: Any, *, store_id: int, deliveries: list[Delivery]) -> Any:
        if any(d.raw_messages[0].get("messageId") == "hold" for d in deliveries):
            release.wait(10)
        if any(d.raw_messages[0].get("messageId") == "poison" for d in deliveries):
            raise RuntimeError("poisoned batch")
        return real_ingest(session, store_id=store_id, deliveries=deliveries)

    monkeypatch.setattr(routes, "ingest_deliveries", ingest)
    writer = routes.IntakeWriter(engine)
    store_id, now = committed_store.store.id, datetime.now(UTC)
    held = writer.submit(store_id, Delivery([_page("hold")], None, now))
    queued = [
        writer.submit(store_id, Delivery([_page(message_id)], None, now))
        for message_id in ("q-1", "q-2", "poison", "q-3", "q-4")
    ]
    # when the writer is released
    release.set()
    held.result(10)
    # then the four good batches are committed and only the poisoned one fails
    outcomes = [future.exception(10) for future in queued]
    assert [type(outcome).__name__ for outcome in outcomes] == [
        "NoneType",
        "NoneType",
        "RuntimeError",
        "NoneType",
        "NoneType",
    ]
    stored = {event["message_id"] for event in stored_events(engine, store_id)}
    assert stored == {"hold", "q-1", "q-2", "q-3", "q-4"}


def test_two_writers_racing_on_the_same_new_users_both_succeed(
    engine: Engine, committed_store: NewStore
) -> None:
    # given two writers (as in two API processes) and batches naming the same new users
    from datetime import UTC, datetime

    from patronage.tracking import routes
    from patronage.tracking.intake import Delivery

    writers = [routes.IntakeWriter(engine), routes.IntakeWriter(engine)]
    store_id, now = committed_store.store.id, datetime.now(UTC)
    futures = []
    for round_number in range(5):
        for number, writer in enumerate(writers):
            batch = [
                {
                    "type": "track",
                    "userId": f"racer-{round_number}-{user}",
                    "event": "E",
                    "messageId": f"r{round_number}-w{number}-u{user}",
                }
                for user in range(20)
            ]
            futures.append(writer.submit(store_id, Delivery(batch, None, now)))
    # then every batch is committed (a lost unique-key race is retried) and no user is doubled
    for future in futures:
        future.result(30)
    events = stored_events(engine, store_id)
    assert len(events) == 5 * 2 * 20
    customers_by_user: dict[str, set[int]] = {}
    for event in events:
        customers_by_user.setdefault(event["user_id"], set()).add(event["customer_id"])
    assert all(len(customers) == 1 for customers in customers_by_user.values())


def test_the_same_batch_sent_to_two_writers_at_once_is_stored_once(
    engine: Engine, committed_store: NewStore
) -> None:
    # given two writers (as in two API processes) that receive the same batches at the same time
    from datetime import UTC, datetime

    from patronage.tracking import routes
    from patronage.tracking.intake import Delivery

    writers = [routes.IntakeWriter(engine), routes.IntakeWriter(engine)]
    store_id, now = committed_store.store.id, datetime.now(UTC)
    futures = []
    for round_number in range(5):
        batch = [_page(f"same-{round_number}-{number}") for number in range(50)]
        for writer in writers:
            futures.append(writer.submit(store_id, Delivery(batch, None, now)))
    # then every request succeeds (the loser of a race on a message id runs again) ...
    for future in futures:
        future.result(30)
    # ... and each message is stored once
    message_ids = [event["message_id"] for event in stored_events(engine, store_id)]
    assert sorted(message_ids) == sorted(
        f"same-{round_number}-{number}" for round_number in range(5) for number in range(50)
    )
