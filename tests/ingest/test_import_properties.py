"""Properties of the order importer under random bad cells in a valid Shopify export.

Whatever is injected, the importer does not crash, an order is either there with all its lines or
absent with every one of its rows in the report, and every rejection names a row of the file.
"""

from __future__ import annotations

import csv
import tempfile
import uuid
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from patronage.db.session import session_scope
from patronage.ingest.shopify_orders import import_shopify_orders
from patronage.stores.service import create_store
from tests.ingest.csv_support import FIXTURES, orders_by_name, read_report, set_rates

with (FIXTURES / "shopify_orders_export.csv").open(newline="", encoding="utf-8") as _handle:
    _reader = csv.reader(_handle)
    HEADER = next(_reader)
    BASE_ROWS = list(_reader)
NAME = HEADER.index("Name")
LINES_PER_ORDER = Counter(row[NAME] for row in BASE_ROWS)

COLUMNS = [
    "Created at", "Total", "Subtotal", "Shipping", "Taxes", "Discount Amount", "Currency",
    "Email", "Financial Status", "Fulfillment Status", "Paid at", "Fulfilled at", "Cancelled at",
    "Refunded Amount", "Lineitem quantity", "Lineitem name", "Lineitem price", "Lineitem sku",
    "Lineitem discount", "Lineitem fulfillment status", "Billing Phone", "Billing Country",
    "Shipping Country", "Accepts Marketing", "Id", "Source", "Tags", "Discount Code",
    "Note Attributes", "Notes",
]  # fmt: skip
BAD_VALUES = st.one_of(
    st.sampled_from([
        "", " ", "abc", "-5", "0", "1e400", "NaN", "Infinity", "12,5O", "9" * 30, "1.123456",
        "2026-13-45 25:00:00 +0000", "0001-01-01 00:00:00 +0530", "💥", "x" * 300, "'", '"',
        "a\nb", "XYZ", "usd", "None", "null", "true", "\x00",
    ]),
    st.text(max_size=12),
)  # fmt: skip
# A Name can only be lost: another Name would make the row part of a different order.
INJECTION = st.one_of(
    st.tuples(st.integers(0, len(BASE_ROWS) - 1), st.sampled_from(COLUMNS), BAD_VALUES),
    st.tuples(st.integers(0, len(BASE_ROWS) - 1), st.just("Name"), st.just("")),
)


def _row_lines(path: Path) -> list[int]:
    """The physical line each data row of the file starts on."""
    starts = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader)
        previous = reader.line_num
        for _ in reader:
            starts.append(previous + 1)
            previous = reader.line_num
    return starts


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(injections=st.lists(INJECTION, min_size=1, max_size=4))
def test_bad_cells_never_crash_never_half_write_and_always_name_the_row(
    engine: Engine, injections: list[tuple[int, str, str]]
) -> None:  # fmt: skip
    rows = [list(row) for row in BASE_ROWS]
    for index, column, value in injections:
        rows[index][HEADER.index(column)] = value
    with session_scope(engine) as session:
        store_id = create_store(session, name=f"P {uuid.uuid4().hex[:6]}",
                                base_currency="USD").store.id  # fmt: skip
    set_rates(engine, store_id)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "orders_export.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(HEADER)
            writer.writerows(rows)
        summary = import_shopify_orders(path, store_id=store_id, engine=engine, chunk_size=2)
        report = read_report(summary.report_path)
        starts = _row_lines(path)

    rejected_lines = {int(row["line"]) for row in report if row["outcome"] == "rejected"}
    event(f"orders rejected: {summary.rejected_records}")
    assert summary.rejected_rows == len(rejected_lines)
    assert rejected_lines <= set(starts), "every rejection names a row of the file"
    assert all(row["problem"] for row in report)
    stored = orders_by_name(engine, store_id)
    for name, count in LINES_PER_ORDER.items():
        order_lines = {starts[index] for index, row in enumerate(BASE_ROWS) if row[NAME] == name}
        if name in stored:
            assert len(stored[name]["lines"]) == count, f"{name} is half written"
            assert not order_lines & rejected_lines
        else:
            assert order_lines <= rejected_lines, f"{name} is missing but not reported"
    assert set(stored) <= set(LINES_PER_ORDER)
