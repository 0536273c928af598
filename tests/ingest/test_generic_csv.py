"""The generic CSV importer: column maps in YAML and JSON, per-line and per-order files."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine

from patronage.ingest.csv_common import UnreadableFileError
from patronage.ingest.generic_csv import (
    ColumnMapError,
    import_customers_csv,
    import_orders_csv,
    load_column_map,
)
from patronage.stores.service import NewStore
from tests.ingest.csv_support import (
    FIXTURES,
    customer_by_identity,
    orders_by_name,
    read_report,
    set_rates,
)


def test_an_erp_order_export_with_a_yaml_map(
    engine: Engine, committed_store: NewStore, tmp_path: Path
) -> None:
    store_id = committed_store.store.id
    set_rates(engine, store_id)
    column_map = load_column_map(FIXTURES / "erp_orders_map.yaml", kind="orders")
    summary = import_orders_csv(FIXTURES / "erp_orders.csv", store_id=store_id, engine=engine,
                                column_map=column_map, report_path=tmp_path / "r.csv")  # fmt: skip
    assert (summary.rows_read, summary.created, summary.rejected_records) == (4, 2, 1)
    orders = orders_by_name(engine, store_id)
    first = orders["ERP-1"]
    assert first["source"] == "erp" and first["total"] == Decimal("54.90")
    assert first["placed_at"] == datetime(2026, 6, 24, 8, 15, tzinfo=UTC)  # Berlin summer time
    assert [(line["sku"], line["quantity"]) for line in first["lines"]] == [
        ("TEA-SEN-50", 2), ("ACC-WSK-01", 1)]  # fmt: skip
    assert first["attributes"] == {"sales_rep": "Jana"}
    second = orders["ERP-2"]
    assert second["currency"] == "EUR" and second["lines"][0]["quantity"] == 1
    anna = customer_by_identity(engine, store_id, "email", "anna.schmidt@example.de")
    assert anna["phone"] == "+49301234567" and anna["consents"]["email"].status == "subscribed"
    report = read_report(summary.report_path)
    assert [(row["line"], row["column"]) for row in report] == [("5", "Order Date")]
    again = import_orders_csv(FIXTURES / "erp_orders.csv", store_id=store_id, engine=engine,
                              column_map=column_map, report_path=tmp_path / "r.csv")  # fmt: skip
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)


def test_one_row_per_order_with_columns_given_on_the_command_line(
    engine: Engine, committed_store: NewStore, tmp_path: Path
) -> None:
    store_id = committed_store.store.id
    path = tmp_path / "orders.csv"
    path.write_text(
        "order_id,date,amount,email\n"
        "A-1,2026-05-01 12:00:00,25.00,una@example.com\n"
        "A-2,2026-05-02T09:30:00+02:00,40.50,\n",
        encoding="utf-8",
    )
    column_map = load_column_map(kind="orders", overrides=[
        "external_id=order_id", "placed_at=date", "total=amount", "email=email",
    ], defaults=["currency=USD"])  # fmt: skip
    summary = import_orders_csv(path, store_id=store_id, engine=engine, column_map=column_map)
    assert summary.created == 2
    orders = orders_by_name(engine, store_id)
    # Without an offset, a time is the store's (Asia/Shanghai in the test store).
    assert orders["A-1"]["placed_at"] == datetime(2026, 5, 1, 4, 0, tzinfo=UTC)
    assert orders["A-2"]["placed_at"] == datetime(2026, 5, 2, 7, 30, tzinfo=UTC)
    assert orders["A-1"]["lines"] == [] and orders["A-1"]["source"] == "csv"


def test_customers_with_a_json_map(
    engine: Engine, committed_store: NewStore, tmp_path: Path
) -> None:
    store_id = committed_store.store.id
    column_map = load_column_map(FIXTURES / "erp_customers_map.json", kind="customers")
    summary = import_customers_csv(
        FIXTURES / "erp_customers.csv", store_id=store_id, engine=engine, column_map=column_map,
        report_path=tmp_path / "r.csv", as_of=datetime(2026, 7, 1, tzinfo=UTC),
    )  # fmt: skip
    assert (summary.created, summary.rejected_records, summary.warnings) == (2, 1, 1)
    anna = customer_by_identity(engine, store_id, "external", "erp:K-1001")
    assert anna["birthday"] == date(1985, 3, 2) and anna["attributes"] == {"segment": "gold"}
    assert anna["consents"]["sms"].status == "not_subscribed"
    carla = customer_by_identity(engine, store_id, "external", "erp:K-1003")
    assert carla["phone"] == "+436641234567" and carla["birthday"] is None
    report = read_report(summary.report_path)
    assert [(row["line"], row["column"], row["outcome"]) for row in report] == [
        ("3", "E-Mail", "rejected"), ("4", "Geburtstag", "value ignored")]  # fmt: skip


def test_map_problems_are_named(tmp_path: Path) -> None:
    with pytest.raises(ColumnMapError, match="unknown orders field\\(s\\): totl"):
        load_column_map(kind="orders", overrides=["external_id=a", "placed_at=b", "totl=c"])
    with pytest.raises(ColumnMapError, match="lacks required field\\(s\\): total, currency"):
        load_column_map(kind="orders", overrides=["external_id=a", "placed_at=b"])
    with pytest.raises(ColumnMapError, match="field=Header"):
        load_column_map(kind="orders", overrides=["external_id"])
    with pytest.raises(ColumnMapError, match="at least one of external_id, email, phone"):
        load_column_map(kind="customers", overrides=["first_name=Name"])
    with pytest.raises(ColumnMapError, match="for orders, not customers"):
        load_column_map(FIXTURES / "erp_orders_map.yaml", kind="customers")
    broken = tmp_path / "map.json"
    broken.write_text(json.dumps({"columns": {"email": "E"}, "colour": "blue"}), encoding="utf-8")
    with pytest.raises(ColumnMapError, match="unknown setting\\(s\\) in the column map: colour"):
        load_column_map(broken, kind="customers")
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(ColumnMapError, match="is not valid"):
        load_column_map(broken, kind="customers")


def test_a_file_without_the_mapped_headers_cannot_be_imported(
    engine: Engine, committed_store: NewStore, tmp_path: Path
) -> None:
    column_map = load_column_map(FIXTURES / "erp_orders_map.yaml", kind="orders")
    column_map.delimiter = ","
    with pytest.raises(UnreadableFileError, match="lacks column\\(s\\) named in the column map"):
        import_orders_csv(FIXTURES / "shopify_orders_export.csv",
                          store_id=committed_store.store.id, engine=engine,
                          column_map=column_map, report_path=tmp_path / "r.csv")  # fmt: skip
