"""`patronage import …`: summaries, JSON output, exit codes, the report file."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from patronage.cli.main import app
from tests.ingest.csv_support import FIXTURES, read_report

runner = CliRunner()


def _store() -> str:
    created = runner.invoke(app, ["stores", "create", "CSV Store", "--json"])
    assert created.exit_code == 0, created.output
    store = str(json.loads(created.stdout)["id"])
    for currency, rate in (("EUR", "1.08"), ("INR", "0.012"), ("GBP", "1.27")):
        result = runner.invoke(app, ["fx", "set", "--store", store, currency, rate,
                                     "--date", "2019-01-01"])  # fmt: skip
        assert result.exit_code == 0, result.output
    return store


def test_shopify_orders_twice_as_json(cli_database: str, tmp_path: Path) -> None:
    store = _store()
    command = ["import", "shopify-orders", str(FIXTURES / "shopify_orders_export.csv"), "--store",
               store, "--report", str(tmp_path / "report.csv"), "--json"]  # fmt: skip
    first = runner.invoke(app, command)
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert (summary["rows_read"], summary["created"], summary["rejected_rows"]) == (8, 5, 0)
    again = json.loads(runner.invoke(app, command).stdout)
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 5)


def test_rejected_rows_still_exit_zero_with_a_summary_table(
    cli_database: str, tmp_path: Path
) -> None:
    store = _store()
    report = tmp_path / "broken.report.csv"
    result = runner.invoke(app, ["import", "shopify-orders",
                                 str(FIXTURES / "shopify_orders_broken.csv"), "--store", store,
                                 "--report", str(report)])  # fmt: skip
    assert result.exit_code == 0, result.output
    for label in ("rows read", "created", "updated", "unchanged", "rejected orders",
                  "rejected rows"):  # fmt: skip
        assert label in result.stdout
    assert "broken.report.csv" in "".join(result.stdout.split())
    assert {row["line"] for row in read_report(report)} >= {"3", "6", "7", "8", "16", "17"}


def test_unreadable_files_exit_non_zero_and_say_why(cli_database: str, tmp_path: Path) -> None:
    store = _store()
    missing = runner.invoke(app, ["import", "shopify-orders", str(tmp_path / "nope.csv"),
                                  "--store", store])  # fmt: skip
    assert missing.exit_code == 1 and "file not found" in missing.output
    wrong = runner.invoke(app, ["import", "shopify-orders",
                                str(FIXTURES / "shopify_customers_export.csv"), "--store", store,
                                "--report", str(tmp_path / "r.csv")])  # fmt: skip
    assert wrong.exit_code == 1
    assert "missing required column(s) Name, Created at" in " ".join(wrong.output.split())
    no_store = runner.invoke(app, ["import", "shopify-customers",
                                   str(FIXTURES / "shopify_customers_export.csv"), "--store",
                                   "999", "--report", str(tmp_path / "r.csv")])  # fmt: skip
    assert no_store.exit_code == 1 and "store 999 does not exist" in no_store.output


def test_shopify_customers_with_as_of(cli_database: str, tmp_path: Path) -> None:
    store = _store()
    result = runner.invoke(app, ["import", "shopify-customers",
                                 str(FIXTURES / "shopify_customers_export.csv"), "--store", store,
                                 "--as-of", "2026-07-01 09:30:00 +0200", "--report",
                                 str(tmp_path / "r.csv"), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["created"] == 4
    assert summary["notes"] == ["consent recorded as of 2026-07-01T07:30:00+00:00"]
    bad = runner.invoke(app, ["import", "shopify-customers", str(FIXTURES / "x.csv"),
                              "--store", store, "--as-of", "last tuesday"])  # fmt: skip
    assert bad.exit_code == 1 and "--as-of is not a timestamp" in bad.output


def test_generic_orders_and_customers_with_maps(cli_database: str, tmp_path: Path) -> None:
    store = _store()
    orders = runner.invoke(app, ["import", "orders-csv", str(FIXTURES / "erp_orders.csv"),
                                 "--store", store, "--map", str(FIXTURES / "erp_orders_map.yaml"),
                                 "--report", str(tmp_path / "o.csv"), "--json"])  # fmt: skip
    assert orders.exit_code == 0, orders.output
    assert json.loads(orders.stdout)["created"] == 2
    customers = runner.invoke(app, ["import", "customers-csv", str(FIXTURES / "erp_customers.csv"),
                                    "--store", store, "--map",
                                    str(FIXTURES / "erp_customers_map.json"),
                                    "--column", "first_name=Vorname",
                                    "--report", str(tmp_path / "c.csv"), "--json"])  # fmt: skip
    assert customers.exit_code == 0, customers.output
    assert json.loads(customers.stdout)["rejected_records"] == 1
    one_per_order = tmp_path / "simple.csv"
    one_per_order.write_text("id,when,sum\nS-1,2026-05-01,10.00\n", encoding="utf-8")
    simple = runner.invoke(app, ["import", "orders-csv", str(one_per_order), "--store", store,
                                 "--column", "external_id=id", "--column", "placed_at=when",
                                 "--column", "total=sum", "--default", "currency=USD",
                                 "--json"])  # fmt: skip
    assert simple.exit_code == 0, simple.output
    assert json.loads(simple.stdout)["created"] == 1
    bad_map = runner.invoke(app, ["import", "orders-csv", str(one_per_order), "--store", store,
                                  "--column", "external_id=id"])  # fmt: skip
    assert bad_map.exit_code == 1 and "lacks required field(s)" in bad_map.output
