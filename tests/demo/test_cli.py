"""`patronage demo` builds the demo store and prints its summary."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from patronage.cli.main import app
from patronage.demo.markets import MARKETS

runner = CliRunner()
ARGUMENTS = ["demo", "--no-serve", "--customers", "200", "--seed", "7", "--json"]


def test_demo_prints_a_json_summary(cli_database: str) -> None:
    result = runner.invoke(app, ARGUMENTS)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["name"] and summary["base_currency"] == "USD"
    assert summary["timezone"] == "Asia/Shanghai" and summary["as_of"] == "2026-11-01"
    assert summary["keys"]["secret_key"].startswith("sk_live_")
    assert summary["keys"]["publishable_key"].startswith("pk_live_")
    assert summary["keys"]["webhook_secret"].startswith("whsec_")
    counts = summary["counts"]
    assert counts["customers"] == 200 and counts["products"] == 80
    assert counts["orders"] > 200 and counts["order_lines"] > counts["orders"]
    assert counts["refunds"] > 0 and counts["events"] > 1_000
    assert [market["code"] for market in summary["markets"]] == [m.code for m in MARKETS]
    assert sum(market["customers"] for market in summary["markets"]) == 200
    assert sum(market["orders"] for market in summary["markets"]) == counts["orders"]

    again = json.loads(runner.invoke(app, [*ARGUMENTS, "--replace"]).stdout)
    assert again["counts"] == counts and again["revenue_base"] == summary["revenue_base"]
    assert again["keys"]["secret_key"] != summary["keys"]["secret_key"]
    listed = json.loads(runner.invoke(app, ["stores", "list", "--json"]).stdout)
    assert [store["id"] for store in listed] == [again["store_id"]]  # the first one was replaced

    assert again["membership"]["members"] > 100
    verified = runner.invoke(app, ["loyalty", "verify", "--store", str(again["store_id"])])
    assert verified.exit_code == 0, verified.output


def test_demo_prints_keys_and_example_requests(cli_database: str) -> None:
    result = runner.invoke(app, ["demo", "--no-serve", "--customers", "30", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert "secret key:" in result.stdout and "publishable key:" in result.stdout
    assert 'curl -H "Authorization: Bearer sk_live_' in result.stdout
    assert "http://127.0.0.1:8123/v1/customers/" in result.stdout
    assert "membership" in result.stdout and "bronze" in result.stdout
    assert "patronage loyalty verify --store" in " ".join(result.stdout.split())


def test_demo_rejects_a_bad_date(cli_database: str) -> None:
    result = runner.invoke(app, ["demo", "--no-serve", "--as-of", "1st of May"])
    assert result.exit_code == 1
    assert "--as-of" in result.output
