"""The Shopify order CSV importer: real export layouts, broken rows, grouping, idempotency."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from patronage.ingest import csv_common
from patronage.ingest.csv_common import UnreadableFileError
from patronage.ingest.shopify_orders import import_shopify_orders
from patronage.orders.schemas import OrderIn
from patronage.stores.service import NewStore
from tests.ingest.csv_support import (
    FIXTURES,
    customer_by_identity,
    orders_by_name,
    read_report,
    set_rates,
)


@pytest.fixture
def store_id(engine: Engine, committed_store: NewStore) -> int:
    """A committed USD store with EUR, INR and GBP rates."""
    set_rates(engine, committed_store.store.id)
    return committed_store.store.id


def _import(engine: Engine, store_id: int, name: str, tmp_path: Path, **options: Any) -> Any:
    report_path = tmp_path / f"{name}.report.csv"
    return import_shopify_orders(FIXTURES / name, store_id=store_id, engine=engine,
                                 report_path=report_path, **options)  # fmt: skip


def test_an_export_lands_with_lines_customers_and_timeline(
    engine: Engine, store_id: int, tmp_path: Path
) -> None:
    summary = _import(engine, store_id, "shopify_orders_export.csv", tmp_path, chunk_size=2)
    assert (summary.rows_read, summary.records_read, summary.created) == (8, 5, 5)
    assert (summary.rejected_rows, summary.rejected_records, summary.warnings) == (0, 0, 0)
    assert summary.customers_created == 5
    orders = orders_by_name(engine, store_id)

    first = orders["#1001"]
    assert first["external_id"] == "5612345678901" and first["source"] == "shopify"
    assert first["currency"] == "INR" and first["total"] == Decimal("2990.00")
    assert (first["subtotal"], first["shipping"], first["tax"], first["discount"]) == (
        Decimal("2450.00"), Decimal("99.00"), Decimal("441.00"), Decimal("250.00"))  # fmt: skip
    assert first["total_base"] == Decimal("35.88")
    assert first["placed_at"] == datetime(2026, 6, 24, 17, 28, 34, tzinfo=UTC)
    assert first["shipped_at"] == datetime(2026, 6, 26, 4, 45, tzinfo=UTC)
    assert first["status"] == "shipped" and first["market"] == "IN" and first["channel"] == "web"
    assert first["discount_codes"] == ["WELCOME10", "VIP5"] and first["tags"] == ["vip", "repeat"]
    assert first["attributes"]["note_attributes"] == {"gift_wrap": "yes",
                                                      "delivery_slot": "evening"}  # fmt: skip
    assert first["attributes"]["note"] == "Call before delivery"
    assert [(line["sku"], line["quantity"], line["unit_price"], line["discount"])
            for line in first["lines"]] == [
        ("TEA-DJ-100", 2, Decimal("700.00"), Decimal("0.00")),
        ("ACC-STR-01", 1, Decimal("1300.00"), Decimal("250.00")),
    ]  # fmt: skip
    priya = customer_by_identity(engine, store_id, "email", "priya.iyer@example.in")
    assert priya["phone"] == "+919871966979" and priya["first_name"] == "Priya"
    assert priya["id"] == first["customer_id"]
    assert priya["consents"]["email"].status == "subscribed"
    assert priya["consents"]["email"].recorded_at == first["placed_at"]

    refunded = orders["#1002"]
    assert refunded["email"] == "tom.smith@example.com" and refunded["status"] == "refunded"
    assert (
        refunded["refunded"] == Decimal("53.00") and refunded["lines"][0]["refunded_quantity"] == 2
    )
    tom = customer_by_identity(engine, store_id, "phone", "+14155550134")
    assert tom["consents"]["email"].status == "not_subscribed"

    partial = orders["#1003"]
    assert partial["status"] == "partially_refunded" and len(partial["lines"]) == 3
    assert partial["channel"] == "pos"
    assert (
        customer_by_identity(engine, store_id, "phone", "+4915123456789")["last_name"] == "Müller"
    )

    voided = orders["#1004"]
    assert voided["status"] == "cancelled" and voided["financial_status"] == "voided"
    assert (
        voided["attributes"]["note_attributes"]["gift_message"] == "Joyeux anniversaire,\nMaman !"
    )

    pending = orders["#1005"]
    assert pending["status"] == "placed" and pending["email"] is None
    assert (
        customer_by_identity(engine, store_id, "phone", "+447700900123")["id"]
        == pending["customer_id"]
    )


def test_importing_the_same_file_twice_changes_nothing(
    engine: Engine, store_id: int, tmp_path: Path
) -> None:
    _import(engine, store_id, "shopify_orders_export.csv", tmp_path)
    before = orders_by_name(engine, store_id)
    again = _import(engine, store_id, "shopify_orders_export.csv", tmp_path)
    assert (again.created, again.updated, again.unchanged, again.customers_created) == (0, 0, 5, 0)
    assert orders_by_name(engine, store_id) == before


def test_broken_rows_are_reported_and_the_good_orders_land(
    engine: Engine, store_id: int, tmp_path: Path
) -> None:
    summary = _import(engine, store_id, "shopify_orders_broken.csv", tmp_path)
    assert set(orders_by_name(engine, store_id)) == {"#2001", "#2007"}
    assert len(orders_by_name(engine, store_id)["#2007"]["lines"]) == 2
    assert (summary.created, summary.rejected_records, summary.rejected_rows) == (2, 7, 11)
    report = read_report(summary.report_path)
    causes = {(int(row["line"]), row["column"]) for row in report if row["column"]}
    assert causes == {
        (3, "Created at"), (6, "Lineitem price"), (7, "Currency"), (8, "Email"), (10, "Name"),
        (11, "Name"), (16, "Total"), (17, "Lineitem quantity"),
    }  # fmt: skip
    by_line = {int(row["line"]): row for row in report}
    assert set(by_line) == {3, 4, 5, 6, 7, 8, 9, 10, 11, 16, 17}
    assert all(row["outcome"] == "rejected" for row in report)
    assert by_line[4]["record"] == "#2002" and "see line 3" in by_line[4]["problem"]
    assert by_line[5]["record"] == "#2003" and "see line 6" in by_line[5]["problem"]
    assert "no exchange rate from XYZ" in by_line[7]["problem"]
    assert by_line[9]["record"] == "#2006" and by_line[10]["record"] == "#2006"
    assert by_line[16]["value"] == "abc" and "negative quantity" in by_line[17]["problem"]


def test_two_orders_of_one_file_cannot_share_an_id(
    engine: Engine, store_id: int, tmp_path: Path
) -> None:
    """The second would overwrite the first: it is rejected, naming the Id and the first order."""
    with (FIXTURES / "shopify_orders_export.csv").open(newline="", encoding="utf-8") as handle:
        header, *rows = list(csv.reader(handle))
    name, order_id = header.index("Name"), header.index("Id")
    shared = next(row[order_id] for row in rows if row[name] == "#1002")
    first_of_1003 = next(index for index, row in enumerate(rows) if row[name] == "#1003")
    rows[first_of_1003][order_id] = shared
    path = tmp_path / "shared_id.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([header, *rows])
    summary = import_shopify_orders(path, store_id=store_id, engine=engine,
                                    report_path=tmp_path / "shared.report.csv")  # fmt: skip
    stored = orders_by_name(engine, store_id)
    assert "#1002" in stored and "#1003" not in stored
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader)
        starts: list[int] = []
        previous = reader.line_num
        for _row in reader:  # the line each row starts on (a quoted cell may span lines)
            starts.append(previous + 1)
            previous = reader.line_num
    [problem] = [row for row in read_report(summary.report_path) if row["column"]]
    assert problem["line"] == str(starts[first_of_1003])
    assert (problem["column"], problem["record"]) == ("Id", "#1003")
    assert "order #1002 (line" in problem["problem"]


def test_rows_of_an_order_need_not_be_consecutive(
    engine: Engine, store_id: int, tmp_path: Path
) -> None:
    summary = _import(engine, store_id, "shopify_orders_scattered.csv", tmp_path, chunk_size=1)
    orders = orders_by_name(engine, store_id)
    assert [line["sku"] for line in orders["#3001"]["lines"]] == ["MUG-1", "SPN-1"]
    assert sorted(line["sku"] for line in orders["#3002"]["lines"]) == ["CUP-1", "SAU-1"]
    # #3003 is described twice; the later description wins and the earlier rows are noted.
    assert orders["#3003"]["total"] == Decimal("35.00") and orders["#3003"]["status"] == "paid"
    assert len(orders["#3003"]["lines"]) == 2
    assert (summary.created, summary.rejected_rows, summary.warnings) == (3, 0, 1)
    assert read_report(summary.report_path)[0]["line"] == "5"
    again = _import(engine, store_id, "shopify_orders_scattered.csv", tmp_path, chunk_size=1)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)


def test_an_older_layout_without_id_is_keyed_by_name(
    engine: Engine, store_id: int, tmp_path: Path
) -> None:
    summary = _import(engine, store_id, "shopify_orders_old_layout.csv", tmp_path)
    orders = orders_by_name(engine, store_id)
    assert summary.created == 2
    assert orders["#901"]["external_id"] == "#901" and len(orders["#901"]["lines"]) == 2
    assert orders["#902"]["customer_id"] == orders["#901"]["customer_id"]


def test_a_file_without_the_order_headers_cannot_be_imported(
    engine: Engine, store_id: int, tmp_path: Path
) -> None:
    report = tmp_path / "report.csv"
    with pytest.raises(UnreadableFileError, match="missing required column\\(s\\) Name, Created"):
        import_shopify_orders(FIXTURES / "shopify_customers_export.csv", store_id=store_id,
                              engine=engine, report_path=report)  # fmt: skip
    assert not report.exists()
    with pytest.raises(UnreadableFileError, match="file not found"):
        import_shopify_orders(tmp_path / "missing.csv", store_id=store_id, engine=engine)
    source = FIXTURES / "shopify_orders_export.csv"
    with pytest.raises(UnreadableFileError, match="would overwrite the file itself"):
        import_shopify_orders(source, store_id=store_id, engine=engine, report_path=source)


def test_a_database_refusal_rejects_only_that_order(
    engine: Engine, store_id: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_upsert = csv_common.upsert_orders

    def refusing_upsert(session: Any, store: Any, orders: list[OrderIn], **options: Any) -> Any:
        if any(order.name == "#1003" for order in orders):
            raise IntegrityError("INSERT INTO orders …", {}, Exception("simulated refusal"))
        return real_upsert(session, store, orders, **options)

    monkeypatch.setattr(csv_common, "upsert_orders", refusing_upsert)
    summary = _import(engine, store_id, "shopify_orders_export.csv", tmp_path)
    assert set(orders_by_name(engine, store_id)) == {"#1001", "#1002", "#1004", "#1005"}
    assert (summary.created, summary.rejected_records, summary.rejected_rows) == (4, 1, 3)
    report = read_report(summary.report_path)
    assert [row["line"] for row in report] == ["6", "7", "8"]
    assert "simulated refusal" in report[0]["problem"]


def test_customers_merged_by_a_shared_phone_keep_the_import_idempotent(
    engine: Engine, store_id: int, tmp_path: Path
) -> None:
    source = FIXTURES / "shopify_orders_export.csv"
    with source.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    header = list(rows[0])
    first = rows[2]  # #1002: Tom, with a phone
    second = {**first, "Name": "#1102", "Id": "5612345679902", "Email": "tom.work@example.com",
              "Billing Phone": ""}  # fmt: skip
    third = {**first, "Name": "#1103", "Id": "5612345679903", "Email": "tom.work@example.com"}
    path = tmp_path / "household.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, header)
        writer.writeheader()
        writer.writerows([first, second, third])
    # One order per transaction: the third order links two existing customers, who merge.
    created = import_shopify_orders(path, store_id=store_id, engine=engine, chunk_size=1)
    assert created.created == 3
    again = import_shopify_orders(path, store_id=store_id, engine=engine, chunk_size=1)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)


@pytest.mark.parametrize("rebuild_at_least", [1, 1_000_000], ids=["rebuilt", "refreshed"])
def test_after_an_import_points_and_aggregates_are_up_to_date(
    engine: Engine,
    store_id: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    rebuild_at_least: int,
) -> None:
    """Points and kept aggregates are brought up to date once, after the last chunk."""
    from patronage.orders import service

    monkeypatch.setattr(service, "_REBUILD_AT_LEAST", rebuild_at_least)
    from sqlalchemy import func, select

    from patronage.analytics import repository
    from patronage.analytics.service import rebuild_aggregates
    from patronage.db.session import session_scope
    from patronage.loyalty.models import LedgerEntry
    from patronage.loyalty.program import default_program, set_program
    from patronage.stores.models import Store

    with session_scope(engine) as session:
        set_program(session, store_id, default_program(), source="test")
    _import(engine, store_id, "shopify_orders_export.csv", tmp_path, chunk_size=1)
    with session_scope(engine) as session:
        kept = repository.store_aggregates(session, store_id)
        kept_categories = repository.store_category_aggregates(session, store_id)
        entries = session.scalar(
            select(func.count()).select_from(LedgerEntry).where(LedgerEntry.store_id == store_id)
        )
        store = session.get(Store, store_id)
        assert store is not None
        rebuild_aggregates(session, store)
        assert repository.store_aggregates(session, store_id) == kept
        assert repository.store_category_aggregates(session, store_id) == kept_categories
    assert kept and entries
