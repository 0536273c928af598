"""The `patronage` command: schema, stores, exchange rates, customer view."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from patronage.cli.main import app

runner = CliRunner()


def test_store_create_prints_keys_as_json(cli_database: str) -> None:
    result = runner.invoke(
        app, ["stores", "create", "Tea House", "--currency", "eur", "--timezone",
              "Europe/Berlin", "--market", "de", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert created["base_currency"] == "EUR" and created["markets"] == ["DE"]
    assert created["secret_key"].startswith("sk_live_")
    assert created["publishable_key"].startswith("pk_live_")
    assert created["webhook_secret"].startswith("whsec_")
    listed = json.loads(runner.invoke(app, ["stores", "list", "--json"]).stdout)
    assert [store["name"] for store in listed] == ["Tea House"]


def test_bad_store_input_fails_with_a_message(cli_database: str) -> None:
    result = runner.invoke(app, ["stores", "create", "X", "--currency", "euro"])
    assert result.exit_code == 1
    assert "not an ISO 4217 code" in result.output


def test_fx_set_and_customer_show(cli_database: str) -> None:
    created = json.loads(runner.invoke(app, ["stores", "create", "S", "--json"]).stdout)
    store = str(created["id"])
    assert runner.invoke(app, ["fx", "set", "--store", store, "EUR", "1.1"]).exit_code == 0
    bad = runner.invoke(app, ["fx", "set", "--store", store, "EUR", "0"])
    assert bad.exit_code == 1 and "positive" in bad.output
    missing = runner.invoke(app, ["customers", "show", "--store", store, "--email", "x@y.com"])
    assert missing.exit_code == 1 and "no customer" in missing.output
