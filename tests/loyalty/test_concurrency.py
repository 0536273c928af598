"""Fifty parallel redemptions of 100 points against a 100-point balance through the HTTP API on a
live server: exactly one wins, forty-nine are told "insufficient points", the balance ends at 0."""

from __future__ import annotations

import threading
import uuid

import httpx
from sqlalchemy import Engine

from patronage.db.session import session_scope
from patronage.loyalty.ledger import verify
from patronage.stores.service import NewStore

PARALLEL = 50
ROUNDS = 5


def _redeem_in_parallel(url: str, headers: dict[str, str], customer: int) -> list[httpx.Response]:
    """Fire PARALLEL redemptions at once, each with its own idempotency key."""
    barrier = threading.Barrier(PARALLEL)
    responses: list[httpx.Response] = []
    lock = threading.Lock()

    def redeem() -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
            barrier.wait()
            response = client.post(
                f"/v1/members/{customer}/redemptions",
                headers={"Idempotency-Key": uuid.uuid4().hex},
                json={"reward": "sticker"},
            )
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=redeem) for _ in range(PARALLEL)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return responses


def test_parallel_redemptions_never_overdraw(
    engine: Engine, live_server: str, live_member: tuple[NewStore, int]
) -> None:
    store, customer = live_member
    headers = {"Authorization": f"Bearer {store.secret_key}"}
    with httpx.Client(base_url=live_server, headers=headers, timeout=120) as client:
        for round_number in range(ROUNDS):
            funded = client.post(
                f"/v1/members/{customer}/points",
                headers={"Idempotency-Key": f"fund-{round_number}"},
                json={"kind": "earn", "points": 100, "reason": "round"},
            )
            assert funded.status_code == 201, funded.text
            assert funded.json()["available"] == 100

            responses = _redeem_in_parallel(live_server, headers, customer)

            statuses = sorted(response.status_code for response in responses)
            assert statuses == [201] + [409] * (PARALLEL - 1), [r.text for r in responses]
            refused = [r.json() for r in responses if r.status_code == 409]
            assert all(
                problem["detail"] == "insufficient points: 0 available, 100 needed"
                for problem in refused
            )
            member = client.get(f"/v1/members/{customer}").json()
            assert (member["available"], member["debt"]) == (0, 0)
    with session_scope(engine) as session:
        assert verify(session, store.store.id).ok
