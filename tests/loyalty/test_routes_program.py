"""The program API: read as JSON or YAML, replace with validation, versions, the catalog."""

from __future__ import annotations

import uuid

import yaml
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from patronage.db.session import session_scope
from patronage.loyalty.program import default_program, program_to_yaml
from patronage.stores.service import NewStore, create_store

PROBLEM = "application/problem+json"


def _headers(store: NewStore, key: str | None = None, **extra: str) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {store.secret_key}", **extra}
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


def _other_store(engine: Engine) -> NewStore:
    with session_scope(engine) as session:
        return create_store(
            session, name=f"Other {uuid.uuid4().hex[:6]}", base_currency="EUR", timezone="UTC"
        )


def test_program_reads_as_json_and_yaml(
    api_client: TestClient, live_member: tuple[NewStore, int]
) -> None:
    store, _ = live_member
    as_json = api_client.get("/v1/loyalty/program", headers=_headers(store))
    assert as_json.status_code == 200, as_json.text
    body = as_json.json()
    assert body["version"] == 1 and body["source"] == "test"
    assert [tier["name"] for tier in body["program"]["tiers"]] == [
        "bronze",
        "silver",
        "gold",
        "diamond",
    ]
    assert body["program"]["tiers"][3]["entry"]["min_spend"] == "5000"

    for response in (
        api_client.get("/v1/loyalty/program?format=yaml", headers=_headers(store)),
        api_client.get("/v1/loyalty/program", headers=_headers(store, Accept="application/yaml")),
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/yaml")
        assert response.headers["Program-Version"] == "1"
        document = yaml.safe_load(response.text)
        assert document["earning"]["points_per_unit"] == 10
        assert document["rewards"][0]["code"] == "coupon-5"


def test_put_program_as_yaml_and_json_writes_versions(
    api_client: TestClient, live_member: tuple[NewStore, int]
) -> None:
    store, _ = live_member
    program = default_program()
    program.earning.points_per_unit = program.earning.points_per_unit * 2
    text = program_to_yaml(program)
    first = api_client.put(
        "/v1/loyalty/program",
        content=text,
        headers=_headers(store, "program-2", **{"Content-Type": "application/yaml"}),
    )
    assert first.status_code == 200, first.text
    assert first.json()["version"] == 2 and first.json()["source"] == "api"
    assert first.json()["program"]["earning"]["points_per_unit"] == "20"

    replay = api_client.put(
        "/v1/loyalty/program",
        content=text,
        headers=_headers(store, "program-2", **{"Content-Type": "application/yaml"}),
    )
    assert replay.status_code == 200 and replay.json() == first.json()
    assert replay.headers["Idempotent-Replayed"] == "true"

    document = first.json()["program"]
    document["name"] = "Club"
    second = api_client.put("/v1/loyalty/program", json=document, headers=_headers(store, "p-3"))
    assert second.status_code == 200, second.text
    assert (second.json()["version"], second.json()["program"]["name"]) == (3, "Club")

    reused = api_client.put(
        "/v1/loyalty/program", json=document, headers=_headers(store, "program-2")
    )
    assert reused.status_code == 409  # the key of the YAML version

    versions = api_client.get("/v1/loyalty/program/versions", headers=_headers(store))
    assert [(v["version"], v["in_force"]) for v in versions.json()["versions"]] == [
        (3, True),
        (2, False),
        (1, False),
    ]
    old = api_client.get("/v1/loyalty/program?version=1", headers=_headers(store))
    assert old.json()["program"]["earning"]["points_per_unit"] == "10"
    gone = api_client.get("/v1/loyalty/program?version=9", headers=_headers(store))
    assert gone.status_code == 404 and gone.headers["content-type"].startswith(PROBLEM)


def test_invalid_programs_are_refused_naming_the_field(
    api_client: TestClient, live_member: tuple[NewStore, int]
) -> None:
    store, _ = live_member
    document = default_program().model_dump(mode="json")
    document["tiers"][1]["entry"]["min_spend"] = "-5"
    document["tiers"][2]["benefits"]["support_priority"] = "urgent"
    invalid = api_client.put("/v1/loyalty/program", json=document, headers=_headers(store, "bad"))
    assert invalid.status_code == 422 and invalid.headers["content-type"].startswith(PROBLEM)
    detail = invalid.json()["detail"]
    assert "tiers.1.entry.min_spend" in detail and "tiers.2.benefits.support_priority" in detail
    assert len(invalid.json()["errors"]) == 2

    no_tiers = api_client.put(
        "/v1/loyalty/program",
        content="name: Club\ntiers: []\n",
        headers=_headers(store, "bad-2", **{"Content-Type": "application/yaml"}),
    )
    assert no_tiers.status_code == 422
    assert "a program needs at least one tier" in no_tiers.json()["detail"]

    broken = api_client.put(
        "/v1/loyalty/program",
        content="tiers: [",
        headers=_headers(store, "bad-3", **{"Content-Type": "text/yaml"}),
    )
    assert broken.status_code == 422 and "not valid YAML" in broken.json()["detail"]
    not_json = api_client.put(
        "/v1/loyalty/program",
        content="{",
        headers=_headers(store, "bad-4", **{"Content-Type": "application/json"}),
    )
    assert not_json.status_code == 422 and "not valid JSON" in not_json.json()["detail"]
    other_type = api_client.put(
        "/v1/loyalty/program",
        content="x",
        headers=_headers(store, "bad-5", **{"Content-Type": "text/plain"}),
    )
    assert other_type.status_code == 415
    missing_key = api_client.put("/v1/loyalty/program", json=document, headers=_headers(store))
    assert missing_key.status_code == 400
    # A refused program leaves the key free and the version unchanged.
    assert api_client.get("/v1/loyalty/program", headers=_headers(store)).json()["version"] == 1


def test_rewards_catalog_and_points_for_cash_rule(
    api_client: TestClient, live_member: tuple[NewStore, int]
) -> None:
    store, _ = live_member
    response = api_client.get("/v1/loyalty/rewards", headers=_headers(store))
    assert response.status_code == 200, response.text
    body = response.json()
    assert [(r["code"], r["cost_points"]) for r in body["rewards"]] == [
        ("coupon-5", 500),
        ("merchandise", 1500),
        ("free-shipping-year", 5000),
        ("sticker", 100),
    ]
    assert body["rewards"][0]["value"] == "5" and body["rewards"][0]["currency"] == "USD"
    rule = body["points_for_cash"]
    assert (rule["points_per_unit"], rule["max_share"]) == (100, "0.30")
    assert (
        rule["text"] == "100 points pay 1.00 USD, for at most 30% of an order (at least 100 points)"
    )


def test_another_store_sees_no_program_and_keys_are_needed(
    api_client: TestClient, engine: Engine, live_member: tuple[NewStore, int]
) -> None:
    other = _other_store(engine)
    for path in ("/v1/loyalty/program", "/v1/loyalty/program/versions", "/v1/loyalty/rewards"):
        response = api_client.get(path, headers=_headers(other))
        assert response.status_code == 404, path
        assert response.json()["title"] == "No membership program"
        unauthorised = api_client.get(path)
        assert unauthorised.status_code == 401
        assert unauthorised.headers["content-type"].startswith(PROBLEM)
    wrong_key = api_client.get(
        "/v1/loyalty/program", headers={"Authorization": "Bearer sk_not_a_key"}
    )
    assert wrong_key.status_code == 401
