"""Header matching, cell cleaners, the key scan and the report, without a database."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from patronage.customers.schemas import ConsentIn, CustomerIn
from patronage.ingest.csv_common import (
    CellProblem,
    CsvFile,
    HeaderMap,
    ImportReport,
    Problem,
    TimestampParser,
    UnreadableFileError,
    fold_customers,
    normalise_header,
    parse_decimal,
    parse_quantity,
    parse_yes_no,
    scan_keys,
    split_list,
    strip_apostrophe,
)


def test_headers_match_whatever_their_case_and_spacing() -> None:
    header = HeaderMap(["\ufeffName", " Lineitem  SKU ", "accepts_email_marketing", "Phone"])
    assert header.find("name") == 0
    assert header.find("LINEITEM sku") == 1
    assert header.find("Accepts Marketing", "Accepts Email Marketing") == 2
    assert header.find("Billing Phone") is None
    assert header.index("Billing Phone") == header.blank == 4
    assert normalise_header("Default Address Country-Code") == "defaultaddresscountrycode"


def test_missing_required_headers_are_named() -> None:
    header = HeaderMap(["Customer ID", "Email"])
    with pytest.raises(UnreadableFileError, match="missing required column\\(s\\) Name, Total"):
        header.require([("Name",), ("Email",), ("Total",)], "a Shopify order export")


def test_metafield_columns_are_found() -> None:
    header = HeaderMap(["Email", "Birth date (customer.metafields.facts.birth_date)"])
    assert header.metafields() == [(1, "facts.birth_date")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("12.50", Decimal("12.50")), (" 1,234.50 ", Decimal("1234.50")), ("", None), ("0", 0),
     ("-3.10", Decimal("-3.10"))],
)  # fmt: skip
def test_amounts(text: str, expected: Decimal | None) -> None:
    assert parse_decimal(text, "Total") == expected


@pytest.mark.parametrize("text", ["12,5O", "NaN", "Infinity", "1_000", "$12", "12,50", "abc"])
def test_bad_amounts_name_the_column(text: str) -> None:
    with pytest.raises(CellProblem) as raised:
        parse_decimal(text, "Lineitem price")
    assert raised.value.column == "Lineitem price"


def test_quantities_booleans_lists_and_apostrophes() -> None:
    assert parse_quantity("2", "q") == 2 and parse_quantity("3.0", "q") == 3
    for bad in ("", "1.5", "many", "99999999999"):
        with pytest.raises(CellProblem):
            parse_quantity(bad, "q")
    assert [parse_yes_no(text, "c") for text in ("yes", "No", "TRUE", "false", "")] == [
        True, False, True, False, None
    ]  # fmt: skip
    with pytest.raises(CellProblem):
        parse_yes_no("maybe", "c")
    assert split_list("WELCOME10, VIP5, WELCOME10,") == ["WELCOME10", "VIP5"]
    assert strip_apostrophe(" '+919871966979") == "+919871966979"
    assert strip_apostrophe("'8509270720648") == "8509270720648"


def test_timestamps_in_shopify_iso_and_pattern_forms() -> None:
    parser = TimestampParser()
    expected = datetime(2026, 6, 24, 17, 28, 34, tzinfo=UTC)
    assert parser.parse("2026-06-24 22:58:34 +0530", "Created at") == expected
    assert parser.parse("2026-06-24T17:28:34Z", "Created at") == expected
    assert parser.parse("", "Created at") is None
    for bad in ("2026-13-45 25:00:00 +0000", "yesterday", "0001-01-01 00:00:00 +0530"):
        with pytest.raises(CellProblem):
            parser.parse(bad, "Created at")
    german = TimestampParser(pattern="%d.%m.%Y %H:%M")
    assert german.parse("24.06.2026 17:28", "Datum") == datetime(2026, 6, 24, 17, 28, tzinfo=UTC)


def test_rows_start_on_their_physical_line(tmp_path: Path) -> None:
    path = tmp_path / "multi.csv"
    path.write_text('Name,Note\n#1,"two\nlines"\n\n#2,plain\n#3,"x"\n', encoding="utf-8")
    with CsvFile(path) as source:
        rows = [(line, cells[0]) for line, cells in source.rows()]
        assert source.rows_read == 3
    assert rows == [(2, "#1"), (5, "#2"), (6, "#3")]


def test_empty_and_missing_files_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFileError, match="file not found"):
        CsvFile(tmp_path / "nothing.csv").__enter__()
    empty = tmp_path / "empty.csv"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(UnreadableFileError, match="empty"):
        CsvFile(empty).__enter__()
    with pytest.raises(UnreadableFileError, match="not a readable CSV"):
        CsvFile(empty, encoding="no-such-encoding").__enter__()


def test_the_key_scan_finds_scattered_and_repeated_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerows([["Name", "Note"], ["#1", "a"], ["#1", "multi\nline, with comma"],
                          ["#2", ""], ["#1", "back again"], ["#3", '"quoted"'], ["", ""],
                          ["#3", "x"], ["#4", "y"]])  # fmt: skip
    with CsvFile(path) as source:
        header_line = source.header_line
    repeated, scattered = scan_keys(path, key_index=0, header_line=header_line)
    assert scattered == {"#1"}
    assert repeated == {"#1", "#3"}
    slow_repeated, slow_scattered = scan_keys(path, key_index=0, header_line=header_line,
                                              encoding="cp1250")  # fmt: skip
    assert (slow_repeated, slow_scattered) == (repeated, scattered)


def test_the_report_lists_a_rejected_record_by_line(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    with ImportReport(path) as report:
        report.reject_record([Problem(6, "Lineitem price", "12,5O", "not an amount")], [5, 6],
                             "#2003")  # fmt: skip
        report.ignore(Problem(9, "Billing Phone", "12", "not a phone"), "#2004")
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert [(row["line"], row["column"], row["outcome"]) for row in rows] == [
        ("5", "", "rejected"), ("6", "Lineitem price", "rejected"),
        ("9", "Billing Phone", "value ignored"),
    ]  # fmt: skip
    assert report.rejected_lines == {5, 6} and report.warnings == 1


def test_folding_two_descriptions_of_one_customer() -> None:
    early = datetime(2026, 1, 1, tzinfo=UTC)
    late = datetime(2026, 2, 1, tzinfo=UTC)
    first = CustomerIn(source="shopify", email="a@example.com", first_name="Ana", tags=["a"],
                       consents={"email": ConsentIn("subscribed", "csv", late)})  # fmt: skip
    second = CustomerIn(source="shopify", email="a@example.com", last_name="López", tags=["b"],
                        consents={"email": ConsentIn("not_subscribed", "csv", early)})  # fmt: skip
    folded = fold_customers(first, second)
    assert (folded.first_name, folded.last_name, folded.tags) == ("Ana", "López", ["a", "b"])
    assert folded.consents["email"].status == "subscribed"
