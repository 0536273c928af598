"""The Shopify customer CSV importer: current, older and template layouts, consent, problems."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from patronage.ingest.csv_common import UnreadableFileError
from patronage.ingest.shopify_customers import import_shopify_customers
from patronage.stores.service import NewStore
from tests.ingest.csv_support import FIXTURES, count_customers, customer_by_identity, read_report

EXPORTED_AT = datetime(2026, 7, 1, 9, 30, tzinfo=UTC)


def _import(engine: Engine, store_id: int, name: str, tmp_path: Path, **options: Any) -> Any:
    """Import a copy of the fixture whose modification time is the export time."""
    copy = tmp_path / name
    shutil.copyfile(FIXTURES / name, copy)
    os.utime(copy, (EXPORTED_AT.timestamp(), EXPORTED_AT.timestamp()))
    return import_shopify_customers(copy, store_id=store_id, engine=engine, **options)


def test_the_current_export_with_apostrophes_consents_and_metafields(
    engine: Engine, committed_store: NewStore, tmp_path: Path
) -> None:
    store_id = committed_store.store.id
    summary = _import(engine, store_id, "shopify_customers_export.csv", tmp_path)
    assert (summary.rows_read, summary.created, summary.rejected_rows) == (4, 4, 0)
    assert summary.report_path == str(tmp_path / "shopify_customers_export.csv.report.csv")

    priya = customer_by_identity(engine, store_id, "shopify", "8509270720648")
    assert (priya["email"], priya["phone"], priya["country"]) == (
        "priya.iyer@example.in", "+919871966979", "IN")  # fmt: skip
    assert priya["tags"] == ["vip", "repeat"]
    assert priya["attributes"] == {"note": "Prefers evening delivery.\nRing twice.",
                                   "facts.birth_date": "1990-04-12",
                                   "custom.favourite_tea": "Darjeeling"}  # fmt: skip
    assert {channel: consent.status for channel, consent in priya["consents"].items()} == {
        "email": "subscribed", "sms": "subscribed", "whatsapp": "subscribed"}  # fmt: skip
    assert {consent.recorded_at for consent in priya["consents"].values()} == {EXPORTED_AT}
    assert {consent.source for consent in priya["consents"].values()} == {"shopify_csv"}

    tom = customer_by_identity(engine, store_id, "shopify", "8509270720649")
    assert tom["email"] == "tom.smith@example.com" and tom["phone"] == "+14155550134"
    assert {channel: consent.status for channel, consent in tom["consents"].items()} == {
        "email": "not_subscribed", "sms": "not_subscribed",
        "whatsapp": "not_subscribed"}  # fmt: skip
    lena = customer_by_identity(engine, store_id, "email", "lena.mueller@example.de")
    assert lena["phone"] == "+4915123456789" and "whatsapp" not in lena["consents"]
    kenji = customer_by_identity(engine, store_id, "phone", "+819012345678")
    assert kenji["email"] is None and ("shopify", "8509270720651") in kenji["identities"]


def test_importing_the_same_export_twice_changes_nothing(
    engine: Engine, committed_store: NewStore, tmp_path: Path
) -> None:
    store_id = committed_store.store.id
    _import(engine, store_id, "shopify_customers_export.csv", tmp_path)
    again = _import(engine, store_id, "shopify_customers_export.csv", tmp_path)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 4)


def test_consent_is_recorded_as_of_the_export_and_yields_to_newer_statements(
    engine: Engine, committed_store: NewStore, tmp_path: Path
) -> None:
    store_id = committed_store.store.id
    later = datetime(2026, 8, 1, tzinfo=UTC)
    _import(engine, store_id, "shopify_customers_export.csv", tmp_path, as_of=later)
    tom = customer_by_identity(engine, store_id, "shopify", "8509270720649")
    assert tom["consents"]["email"].recorded_at == later
    # An older export says "yes" for Tom; the newer "no" already held stays.
    older = tmp_path / "older.csv"
    text = (FIXTURES / "shopify_customers_export.csv").read_text(encoding="utf-8")
    older.write_text(text.replace("TOM.SMITH@example.com,no", "TOM.SMITH@example.com,yes"),
                     encoding="utf-8")  # fmt: skip
    import_shopify_customers(older, store_id=store_id, engine=engine, as_of=EXPORTED_AT,
                             report_path=tmp_path / "r.csv")  # fmt: skip
    tom = customer_by_identity(engine, store_id, "shopify", "8509270720649")
    assert tom["consents"]["email"].status == "not_subscribed"


@pytest.mark.parametrize(
    ("name", "identity", "expected"),
    [
        ("shopify_customers_old_layout.csv", ("shopify", "6109273440292"),
         {"phone": "+447700900123", "country": "GB", "email": "omar.cohen@example.co.uk"}),
        ("shopify_customers_oldest_layout.csv", ("email", "maya.berg@example.se"),
         {"phone": "+46701234567", "country": "SE", "first_name": "Maya"}),
        ("shopify_customers_template.csv", ("email", "ravi.sharma@example.in"),
         {"phone": "+919871966970", "country": "IN", "tags": ["imported", "wholesale"]}),
    ],
)  # fmt: skip
def test_older_layouts_and_the_import_template(
    engine: Engine, committed_store: NewStore, tmp_path: Path, name: str,
    identity: tuple[str, str], expected: dict[str, Any],
) -> None:  # fmt: skip
    store_id = committed_store.store.id
    summary = _import(engine, store_id, name, tmp_path)
    assert summary.rejected_rows == 0 and summary.created == summary.rows_read
    customer = customer_by_identity(engine, store_id, *identity)
    assert {key: customer[key] for key in expected} == expected
    assert "email" in customer["consents"]


def test_the_oldest_layout_reads_accepts_marketing_as_email_consent(
    engine: Engine, committed_store: NewStore, tmp_path: Path
) -> None:
    store_id = committed_store.store.id
    _import(engine, store_id, "shopify_customers_oldest_layout.csv", tmp_path)
    maya = customer_by_identity(engine, store_id, "email", "maya.berg@example.se")
    jonas = customer_by_identity(engine, store_id, "email", "jonas.berg@example.se")
    assert maya["consents"]["email"].status == "subscribed"
    assert jonas["consents"]["email"].status == "not_subscribed"


def test_bad_rows_are_reported_and_good_rows_land(
    engine: Engine, committed_store: NewStore, tmp_path: Path
) -> None:
    store_id = committed_store.store.id
    summary = _import(engine, store_id, "shopify_customers_broken.csv", tmp_path)
    assert (summary.created, summary.rejected_records, summary.rejected_rows) == (3, 3, 3)
    assert summary.warnings == 2 and count_customers(engine, store_id) == 3
    report = read_report(summary.report_path)
    assert [(row["line"], row["column"], row["outcome"]) for row in report] == [
        ("3", "Email", "rejected"), ("4", "Customer ID", "rejected"),
        ("5", "Phone", "value ignored"), ("5", "Accepts Email Marketing", "value ignored"),
        ("6", "Email", "rejected"),
    ]  # fmt: skip
    bad_phone = customer_by_identity(engine, store_id, "email", "bad.phone@example.com")
    assert bad_phone["phone"] is None and "email" not in bad_phone["consents"]
    last = customer_by_identity(engine, store_id, "shopify", "8509270720705")
    assert last["attributes"] == {"note": "Line one\nline two"}


def test_a_customer_repeated_across_chunks_is_folded_into_one(
    engine: Engine, committed_store: NewStore, tmp_path: Path
) -> None:
    store_id = committed_store.store.id
    path = tmp_path / "repeated.csv"
    path.write_text(
        "Customer ID,First Name,Last Name,Email,Tags\n"
        "'1001,Ana,,ana@example.com,first\n"
        "'1002,Ben,,ben@example.com,\n"
        "'1001,,López,ana@example.com,second\n",
        encoding="utf-8",
    )
    first = import_shopify_customers(path, store_id=store_id, engine=engine, chunk_size=1)
    assert (first.created, first.records_read) == (2, 2)
    ana = customer_by_identity(engine, store_id, "shopify", "1001")
    assert (ana["first_name"], ana["last_name"], ana["tags"]) == ("Ana", "López",
                                                                   ["first", "second"])  # fmt: skip
    again = import_shopify_customers(path, store_id=store_id, engine=engine, chunk_size=1)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)


def test_a_file_without_any_customer_key_cannot_be_imported(
    engine: Engine, committed_store: NewStore, tmp_path: Path
) -> None:
    with pytest.raises(UnreadableFileError, match="Customer ID / Email / Phone"):
        import_shopify_customers(FIXTURES / "erp_orders.csv", store_id=committed_store.store.id,
                                 engine=engine, report_path=tmp_path / "r.csv")  # fmt: skip
