"""Shopify order CSV import: Patronage's streaming importer against a row-by-row ORM insert.

    python -m benchmarks.bench_import --case patronage|baseline --backend sqlite|postgresql --rows N

prints one JSON object (the fields of `benchmarks.common.Result`). The file is generated first
(deterministic, ~2.5 lines per order, several currencies) and not timed; the timing covers the
import only.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
from sqlalchemy import Engine

from benchmarks.common import POSTGRES_ADMIN, Result, peak_rss_mb, stopwatch

BASE_CURRENCY = "USD"
RATES = {"EUR": Decimal("1.08"), "GBP": Decimal("1.27"), "INR": Decimal("0.012"),
         "JPY": Decimal("0.0067"), "CAD": Decimal("0.73")}  # fmt: skip
RATE_DATE = date(2024, 1, 1)
TARGET_ROWS_PER_SECOND = 50_000

HEADER = [
    "Name", "Email", "Financial Status", "Paid at", "Fulfillment Status", "Fulfilled at",
    "Accepts Marketing", "Currency", "Subtotal", "Shipping", "Taxes", "Total", "Discount Code",
    "Discount Amount", "Shipping Method", "Created at", "Lineitem quantity", "Lineitem name",
    "Lineitem price", "Lineitem compare at price", "Lineitem sku", "Lineitem requires shipping",
    "Lineitem taxable", "Lineitem fulfillment status", "Billing Name", "Billing Street",
    "Billing Address1", "Billing Address2", "Billing Company", "Billing City", "Billing Zip",
    "Billing Province", "Billing Country", "Billing Phone", "Shipping Name", "Shipping Street",
    "Shipping Address1", "Shipping Address2", "Shipping Company", "Shipping City", "Shipping Zip",
    "Shipping Province", "Shipping Country", "Shipping Phone", "Notes", "Note Attributes",
    "Cancelled at", "Payment Method", "Payment Reference", "Refunded Amount", "Vendor",
    "Outstanding Balance", "Employee", "Location", "Device ID", "Id", "Tags", "Risk Level",
    "Source", "Lineitem discount", "Tax 1 Name", "Tax 1 Value", "Tax 2 Name", "Tax 2 Value",
    "Tax 3 Name", "Tax 3 Value", "Tax 4 Name", "Tax 4 Value", "Tax 5 Name", "Tax 5 Value", "Phone",
    "Receipt Number", "Duties", "Billing Province Name", "Shipping Province Name", "Payment ID",
    "Payment Terms Name", "Next Payment Due At", "Payment References"
]  # fmt: skip

# market, currency, UTC offset, phone pattern, city, province code, province, zip, tax name
MARKETS = [
    ("US", "USD", "-0500", "+1 212{:07d}", "New York", "NY", "New York", "10001", "NY Tax"),
    ("US", "USD", "-0800", "+1 415{:07d}", "San Francisco", "CA", "California", "94103",
     "CA State Tax"),
    ("DE", "EUR", "+0100", "+49 1512 {:07d}", "Berlin", "BE", "Berlin", "10115", "MwSt 19%"),
    ("FR", "EUR", "+0100", "+33 6{:08d}", "Lyon", "ARA", "Auvergne-Rhône-Alpes", "69001",
     "TVA 20%"),
    ("GB", "GBP", "+0000", "+44 7700 {:06d}", "London", "ENG", "England", "SW1A 1AA", "VAT 20%"),
    ("IN", "INR", "+0530", "'+91 98{:08d}", "Bhubaneswar", "OR", "Odisha", "'751021",
     "IGST 18%"),
    ("JP", "JPY", "+0900", "+81 90{:08d}", "Tokyo", "13", "Tokyo", "'100-0001",
     "JCT 10%"),
    ("CA", "CAD", "-0500", "+1 416{:07d}", "Toronto", "ON", "Ontario", "M5V 2T6",
     "HST 13%"),
]  # fmt: skip
FIRST_NAMES = ["Ana", "Ravi", "Lena", "Tom", "Yuki", "Chloé", "Priya", "Jonas", "Maya", "Omar"]
LAST_NAMES = ["López", "Sharma", "Müller", "Smith", "Tanaka", "Martin", "Iyer", "Berg", "Cohen"]
PRODUCTS = [(f"SKU-{number:04d}", f"{kind} {colour}", Decimal(price))
            for number, (kind, colour, price) in enumerate(
                (kind, colour, price)
                for kind, price in (("Tea tin", "12.50"), ("Linen shirt", "49.00"),
                                    ("Ceramic mug", "18.00"), ("Silk scarf", "65.00"),
                                    ("Notebook", "9.90"), ("Candle", "22.00"))
                for colour in ("Red", "Blue", "Sand", "Olive", "Black"))]  # fmt: skip
FACTORS = {"USD": Decimal(1), "EUR": Decimal("0.93"), "GBP": Decimal("0.79"),
           "INR": Decimal("83"), "JPY": Decimal("150"), "CAD": Decimal("1.36")}  # fmt: skip
STATUSES = ["paid"] * 16 + ["pending", "authorized", "refunded", "partially_refunded", "voided"]


def _money(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(Decimal(1) if currency == "JPY" else Decimal("0.01"))


def _stamp(moment: datetime, offset: str) -> str:
    sign = -1 if offset[0] == "-" else 1
    delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])) * sign
    return (moment + delta).strftime("%Y-%m-%d %H:%M:%S ") + offset


def generate_shopify_orders(path: Path, rows: int, seed: int = 7) -> int:
    """Write a realistic Shopify order export of exactly `rows` rows; return how many orders."""
    rng = random.Random(seed)
    customers = max(1, rows // 4)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    written = orders = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        while written < rows:
            orders += 1
            customer = rng.randrange(customers)
            market = MARKETS[customer % len(MARKETS)]
            country, currency, offset, phone_pattern, city, province, province_name, zip_code, \
                tax_name = market  # fmt: skip
            first = FIRST_NAMES[customer % len(FIRST_NAMES)]
            last = LAST_NAMES[(customer // 7) % len(LAST_NAMES)]
            email = f"{first.lower()}.{customer}@example.com".replace("é", "e")
            placed = start + timedelta(seconds=orders * 97 + rng.randrange(60))
            count = min(rng.choices((1, 2, 3, 4), weights=(2, 3, 3, 2))[0], rows - written)
            items = [PRODUCTS[rng.randrange(len(PRODUCTS))] for _ in range(count)]
            quantities = [rng.choice((1, 1, 1, 2, 3)) for _ in items]
            prices = [_money(price * FACTORS[currency], currency) for _, _, price in items]
            line_discounts = [_money(price * Decimal("0.1") if rng.random() < 0.1 else Decimal(0),
                                     currency) for price in prices]  # fmt: skip
            subtotal = sum((p * q - d for p, q, d in zip(prices, quantities, line_discounts,
                                                        strict=True)), Decimal(0))  # fmt: skip
            codes, discount = "", _money(Decimal(0), currency)
            if rng.random() < 0.15:
                codes = rng.choice(("WELCOME10", "SPRING, VIP5"))
                discount = _money(subtotal * Decimal("0.1"), currency)
                subtotal -= discount
            shipping = _money(Decimal("4.90") * FACTORS[currency], currency)
            taxes = _money(subtotal * Decimal("0.08"), currency)
            total = subtotal + shipping + taxes
            status = rng.choice(STATUSES)
            paid = _stamp(placed + timedelta(minutes=2), offset) if status != "pending" else ""
            fulfilled = status in ("paid", "refunded", "partially_refunded")
            refunded = {"refunded": total, "partially_refunded": _money(total / 3, currency)}.get(
                status, ""
            )
            phone = phone_pattern.format(customer) if customer % 5 < 3 else ""
            note = "Please leave at the door" if rng.random() < 0.05 else ""
            attributes = ("gift_wrap: yes\ndelivery_date: 2026-06-30\nreferrer: instagram"
                          if rng.random() < 0.1 else "")  # fmt: skip
            order_id = str(5_600_000_000_000 + orders * 13)
            created = _stamp(placed, offset)
            for index, ((sku, title, _), quantity, price, line_discount) in enumerate(
                zip(items, quantities, prices, line_discounts, strict=True)
            ):
                line_status = "restocked" if status == "refunded" else (
                    "fulfilled" if fulfilled else "pending")  # fmt: skip
                row = dict.fromkeys(HEADER, "")
                row.update({
                    "Name": f"#{1000 + orders}", "Email": email, "Created at": created,
                    "Lineitem quantity": str(quantity), "Lineitem name": title,
                    "Lineitem price": str(price), "Lineitem compare at price": "",
                    "Lineitem sku": sku, "Lineitem requires shipping": "true",
                    "Lineitem taxable": "true", "Lineitem fulfillment status": line_status,
                    "Vendor": "Patronage Goods", "Lineitem discount": str(line_discount),
                })  # fmt: skip
                if index == 0:
                    name = f"{first} {last}"
                    row.update({
                        "Financial Status": status, "Paid at": paid,
                        "Fulfillment Status": "fulfilled" if fulfilled else "unfulfilled",
                        "Fulfilled at": _stamp(placed + timedelta(days=2), offset)
                        if fulfilled else "",
                        "Accepts Marketing": "yes" if customer % 3 else "no", "Currency": currency,
                        "Subtotal": str(subtotal), "Shipping": str(shipping),
                        "Taxes": str(taxes), "Total": str(total), "Discount Code": codes,
                        "Discount Amount": str(discount), "Shipping Method": "Standard",
                        "Billing Name": name, "Billing Street": f"{customer % 90 + 1} Main St",
                        "Billing Address1": f"{customer % 90 + 1} Main St",
                        "Billing City": city, "Billing Zip": zip_code,
                        "Billing Province": province, "Billing Country": country,
                        "Billing Phone": phone, "Shipping Name": name,
                        "Shipping Street": f"{customer % 90 + 1} Main St",
                        "Shipping Address1": f"{customer % 90 + 1} Main St",
                        "Shipping City": city, "Shipping Zip": zip_code,
                        "Shipping Province": province, "Shipping Country": country,
                        "Shipping Phone": phone, "Notes": note, "Note Attributes": attributes,
                        "Cancelled at": _stamp(placed + timedelta(hours=3), offset)
                        if status == "voided" else "",
                        "Payment Method": "Shopify Payments",
                        "Payment Reference": f"c{order_id}.1", "Refunded Amount": str(refunded),
                        "Outstanding Balance": "0.00", "Id": order_id,
                        "Tags": "vip, repeat" if customer % 11 == 0 else "",
                        "Risk Level": "Low", "Source": rng.choice(("web", "web", "pos", "580111")),
                        "Tax 1 Name": tax_name, "Tax 1 Value": str(taxes),
                        "Billing Province Name": province_name,
                        "Shipping Province Name": province_name,
                        "Payment ID": f"c{order_id}.1",
                        "Payment References": f"c{order_id}.1",
                    })  # fmt: skip
                writer.writerow(row[column] for column in HEADER)
                written += 1
    return orders


# --- Databases --------------------------------------------------------------------------------


@contextmanager
def database(backend: str) -> Iterator[Engine]:
    """A fresh, migrated database of `backend`, removed afterwards."""
    from patronage.db.engine import create_engine_for
    from patronage.db.migrate import upgrade

    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            engine = create_engine_for(f"sqlite:///{directory}/bench.db")
            upgrade(engine)
            try:
                yield engine
            finally:
                engine.dispose()
        return
    name = f"patronage_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    engine = create_engine_for(f"{base}/{name}")
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def prepare_store(engine: Engine) -> int:
    """Create a USD store with the exchange rates the generated file needs; return its id."""
    from patronage.db.session import session_scope
    from patronage.orders.fx import set_rate
    from patronage.stores.service import create_store

    with session_scope(engine) as session:
        store = create_store(session, name="Bench store", base_currency=BASE_CURRENCY).store
        for currency, rate in RATES.items():
            set_rate(session, store.id, currency=currency, rate_date=RATE_DATE, rate=rate,
                     source="bench")  # fmt: skip
        return store.id


# --- The two cases ------------------------------------------------------------------------------


def run_patronage(engine: Engine, store_id: int, path: Path) -> int:
    """Import with Patronage's importer; return the rows read."""
    from patronage.ingest.shopify_orders import import_shopify_orders

    summary = import_shopify_orders(path, store_id=store_id, engine=engine,
                                    report_path=path.with_suffix(".report.csv"))  # fmt: skip
    if summary.rejected_rows:
        raise RuntimeError(f"{summary.rejected_rows} rows rejected; see {summary.report_path}")
    return summary.rows_read


def run_baseline(engine: Engine, store_id: int, path: Path) -> int:
    """The straightforward way: one ORM object per row, flush per row, commit per 1,000 rows."""
    from sqlalchemy.orm import Session

    from patronage.kit.money import quantize
    from patronage.kit.times import parse_timestamp
    from patronage.orders.models import Order, OrderLine

    rows = 0
    order: Order | None = None
    line_number = 0
    now = datetime.now(UTC)
    with Session(engine) as session, path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            rows += 1
            if row["Financial Status"]:
                currency = row["Currency"]
                rate = RATES.get(currency, Decimal(1))
                total, subtotal = Decimal(row["Total"]), Decimal(row["Subtotal"])
                placed_at = parse_timestamp(row["Created at"])
                assert placed_at is not None
                order = Order(
                    store_id=store_id, source="shopify", external_id=row["Id"],
                    name=row["Name"], email=row["Email"], market=row["Shipping Country"] or None,
                    channel=row["Source"], currency=currency, subtotal=subtotal,
                    discount=Decimal(row["Discount Amount"] or 0),
                    shipping=Decimal(row["Shipping"] or 0), tax=Decimal(row["Taxes"] or 0),
                    total=total, refunded=Decimal(row["Refunded Amount"] or 0), fx_rate=rate,
                    subtotal_base=quantize(subtotal * rate, BASE_CURRENCY),
                    total_base=quantize(total * rate, BASE_CURRENCY),
                    refunded_base=quantize(Decimal(row["Refunded Amount"] or 0) * rate,
                                           BASE_CURRENCY),
                    status=row["Financial Status"], financial_status=row["Financial Status"],
                    fulfillment_status=row["Fulfillment Status"] or None, placed_at=placed_at,
                    paid_at=parse_timestamp(row["Paid at"]),
                    shipped_at=parse_timestamp(row["Fulfilled at"]),
                    cancelled_at=parse_timestamp(row["Cancelled at"]),
                    discount_codes=[code.strip() for code in row["Discount Code"].split(",")
                                    if code.strip()],
                    tags=[tag.strip() for tag in row["Tags"].split(",") if tag.strip()],
                    attributes={}, content_hash="", created_at=now, updated_at=now,
                )  # fmt: skip
                session.add(order)
                session.flush()
                line_number = 0
            assert order is not None
            line_number += 1
            quantity, price = int(row["Lineitem quantity"]), Decimal(row["Lineitem price"])
            discount = Decimal(row["Lineitem discount"] or 0)
            session.add(OrderLine(
                store_id=store_id, order_id=order.id, line_number=line_number,
                sku=row["Lineitem sku"], title=row["Lineitem name"], quantity=quantity,
                unit_price=price, discount=discount, total=price * quantity - discount,
            ))  # fmt: skip
            session.flush()
            if rows % 1_000 == 0:
                session.commit()
        session.commit()
    return rows


def measure(case: str, backend: str, rows: int) -> Result:
    """Generate the file, run one case on one backend and return its measured line."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "orders_export.csv"
        orders = generate_shopify_orders(path, rows)
        with database(backend) as engine:
            store_id = prepare_store(engine)
            work = run_patronage if case == "patronage" else run_baseline
            cpu_started = time.process_time()
            with stopwatch() as elapsed:
                items = work(engine, store_id, path)
            seconds = elapsed()
            cpu_seconds = time.process_time() - cpu_started
    result = Result(
        benchmark="Shopify order CSV import",
        variant="Patronage streaming import" if case == "patronage"
        else "baseline: row-by-row ORM insert",
        backend=backend, items=items, unit="rows", seconds=round(seconds, 3),
        peak_mb=round(peak_rss_mb(), 1),
        note=f"{orders:,} orders; {cpu_seconds:.2f} CPU-s in the importing process, "
        f"{items / cpu_seconds:,.0f} rows per CPU-second"
        + ("" if backend == "sqlite" else " (the server's CPU not counted)")
        + ("" if case == "patronage" else "; orders and lines only, no customers or timeline"),
    )  # fmt: skip
    if case == "patronage" and backend == "sqlite":
        result.target = f"≥ {TARGET_ROWS_PER_SECOND:,} rows/s"
        result.met = result.rate >= TARGET_ROWS_PER_SECOND
    return result


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--case", choices=("patronage", "baseline"), default="patronage")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--rows", type=int, default=100_000)
    arguments = parser.parse_args()
    result = measure(arguments.case, arguments.backend, arguments.rows)
    print(json.dumps(asdict(result), ensure_ascii=False))


if __name__ == "__main__":
    main()
