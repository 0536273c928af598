"""The Shopify order CSV export: one row per line item, the first row of an order holds its fields.

Orders are keyed like the webhooks key them (`source="shopify"`, the numeric `Id`), so a CSV
import and a later webhook describe the same order; older layouts without `Id` fall back to `Name`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from patronage.customers.schemas import ConsentIn, CustomerIn
from patronage.ingest.csv_common import (
    CHUNK_SIZE,
    CellProblem,
    CsvFile,
    HeaderMap,
    ImportSummary,
    OrderImport,
    PhoneParser,
    Problem,
    Progress,
    RecordRejected,
    SourceRow,
    TimestampParser,
    country_code,
    email_cell,
    limit,
    parse_decimal,
    parse_quantity,
    parse_yes_no,
    run_import,
    split_list,
    strip_apostrophe,
)
from patronage.orders.schemas import ZERO, LineIn, OrderIn

SOURCE = "shopify"
CONSENT_SOURCE = "shopify_csv"
REQUIRED = (("Name",), ("Created at",), ("Currency",), ("Total",), ("Lineitem quantity",),
            ("Lineitem name",), ("Lineitem price",))  # fmt: skip
# Columns filled only on the first row of an order.
HEAD_COLUMNS = ("Financial Status", "Currency", "Total", "Subtotal")
_LINE_FIELD = re.compile(r"^lines\[(\d+)\]\.(\w+)$")
# Part of every order's fingerprint: change it when the same rows come to be read differently, so
# that a re-import updates the orders it would otherwise find unchanged.
READING_VERSION = "shopify-orders/1"
_ORDER_FIELD_COLUMNS = {
    "external_id": "Id", "currency": "Currency", "total": "Total", "subtotal": "Subtotal",
    "discount": "Discount Amount", "shipping": "Shipping", "tax": "Taxes",
    "refunded": "Refunded Amount", "total_base": "Total",
}  # fmt: skip
_LINE_FIELD_COLUMNS = {
    "unit_price": "Lineitem price", "discount": "Lineitem discount",
    "quantity": "Lineitem quantity",
}  # fmt: skip


class ShopifyOrderRows:
    """Builds an OrderIn from the rows of one order of a Shopify order export."""

    def __init__(self, header: HeaderMap) -> None:
        header.require(REQUIRED, "a Shopify order export")
        self.header = header
        self.labels = [*header.labels, ""]  # by position; the blank column has no label
        self.timestamps = TimestampParser()
        self.phones = PhoneParser()
        at = header.index
        self.key_index = at("Name")
        self.key_label = self.labels[self.key_index]
        self.head_positions = [at(name) for name in HEAD_COLUMNS if header.has(name)]
        self.name, self.order_id = self.key_index, at("Id")
        self.email, self.phone = at("Email"), at("Phone")
        self.financial_status, self.paid_at = at("Financial Status"), at("Paid at")
        self.fulfillment_status, self.fulfilled_at = at("Fulfillment Status"), at("Fulfilled at")
        self.accepts_marketing = at("Accepts Marketing", "Accepts Email Marketing")
        self.currency, self.subtotal, self.total = at("Currency"), at("Subtotal"), at("Total")
        self.shipping, self.taxes = at("Shipping"), at("Taxes")
        self.discount_code, self.discount_amount = at("Discount Code"), at("Discount Amount")
        self.shipping_method, self.created_at = at("Shipping Method"), at("Created at")
        self.quantity, self.title = at("Lineitem quantity"), at("Lineitem name")
        self.price, self.sku = at("Lineitem price"), at("Lineitem sku")
        self.line_discount = at("Lineitem discount")
        self.line_status = at("Lineitem fulfillment status")
        self.billing_name, self.billing_phone = at("Billing Name"), at("Billing Phone")
        self.billing_country, self.shipping_country = at("Billing Country"), at("Shipping Country")
        self.notes, self.note_attributes = at("Notes", "Note"), at("Note Attributes")
        self.cancelled_at, self.payment_method = at("Cancelled at"), at("Payment Method")
        self.refunded_amount, self.tags, self.source = (
            at("Refunded Amount"),
            at("Tags"),
            at("Source"),
        )
        self._line_rows: list[int] = []
        self._head_line = 0
        self._fingerprint_seed = hashlib.blake2b(
            "\x1f".join([READING_VERSION, *header.labels]).encode(), digest_size=16
        )

    def is_head(self, cells: list[str]) -> bool:
        """Whether the row carries the order-level fields."""
        return any(map(cells.__getitem__, self.head_positions))

    def build(self, rows: Sequence[SourceRow], warnings: list[Problem]) -> OrderIn:
        """The order described by `rows`, or RecordRejected naming every bad cell."""
        head: SourceRow | None = None
        for row in rows:
            if self.is_head(row[1]):
                head = row
                break
        if head is None:
            raise RecordRejected([Problem(
                rows[0][0], self.labels[self.total], "",
                "no row of this order has the order fields (Financial Status, Currency, Total)",
            )])  # fmt: skip
        problems: list[Problem] = []
        order: OrderIn | None = None
        self._head_line = head[0]
        try:
            order = self._order(head[0], head[1], warnings)
        except CellProblem as problem:
            problems.append(Problem(head[0], problem.column, problem.value, problem.reason))
        lines: list[LineIn] = []
        self._line_rows = []
        for line, cells in rows:
            try:
                lines.append(self._line(cells))
            except CellProblem as problem:
                problems.append(Problem(line, problem.column, problem.value, problem.reason))
                continue
            self._line_rows.append(line)
        if problems or order is None:
            raise RecordRejected(problems)
        order.lines = lines
        order.fingerprint = self.fingerprint(rows)
        return order

    def fingerprint(self, rows: Sequence[SourceRow]) -> str:
        """A digest of the order's cells (and of the header): the same rows give the same order."""
        digest = self._fingerprint_seed.copy()
        digest.update("\x1e".join(["\x1f".join(cells) for _, cells in rows]).encode())
        return digest.hexdigest()

    def locate(self, field: str, rows: Sequence[SourceRow]) -> tuple[int, str]:
        """The (line, column) behind a validation field such as `total` or `lines[2].unit_price`."""
        match = _LINE_FIELD.match(field)
        if match:
            index = int(match.group(1)) - 1
            line = self._line_rows[index] if index < len(self._line_rows) else self._head_line
            column = _LINE_FIELD_COLUMNS.get(match.group(2), "")
        else:
            line = self._head_line
            column = _ORDER_FIELD_COLUMNS.get(field, "")
            if field == "external_id" and not self.header.has("Id"):
                column = "Name"
        position = self.header.find(column) if column else None
        return line, self.header.labels[position] if position is not None else column

    def _order(self, line: int, cells: list[str], warnings: list[Problem]) -> OrderIn:
        timestamps, labels = self.timestamps, self.labels
        name = limit(cells[self.name].strip(), 64, labels[self.name])
        external_id = limit(strip_apostrophe(cells[self.order_id]) or name, 64,
                            labels[self.order_id] or labels[self.name])  # fmt: skip
        currency = cells[self.currency].strip().upper()
        if not currency:
            raise CellProblem(labels[self.currency], "", "the currency is empty")
        placed_at = timestamps.parse(cells[self.created_at], labels[self.created_at])
        if placed_at is None:
            raise CellProblem(labels[self.created_at], "", "the order date is empty")
        total = parse_decimal(cells[self.total], labels[self.total])
        if total is None:
            raise CellProblem(labels[self.total], "", "the total is empty")
        financial_status = cells[self.financial_status].strip().lower() or None
        if financial_status is not None:
            limit(financial_status, 32, labels[self.financial_status])
        fulfillment_status = cells[self.fulfillment_status].strip().lower() or None
        if fulfillment_status is not None:
            limit(fulfillment_status, 32, labels[self.fulfillment_status])
        refunded = parse_decimal(cells[self.refunded_amount], labels[self.refunded_amount])
        if refunded is None and financial_status == "refunded":
            refunded = total
        channel = cells[self.source].strip() or None
        if channel is not None:
            limit(channel, 64, labels[self.source])
        email = email_cell(cells[self.email], labels[self.email])
        order = OrderIn(
            source=SOURCE,
            external_id=external_id,
            currency=currency,
            placed_at=placed_at,
            total=total,
            subtotal=parse_decimal(cells[self.subtotal], labels[self.subtotal]),
            discount=parse_decimal(cells[self.discount_amount], labels[self.discount_amount])
            or ZERO,
            shipping=parse_decimal(cells[self.shipping], labels[self.shipping]) or ZERO,
            tax=parse_decimal(cells[self.taxes], labels[self.taxes]) or ZERO,
            name=name,
            email=email,
            market=self._market(line, cells, warnings),
            channel=channel,
            financial_status=financial_status,
            fulfillment_status=fulfillment_status,
            paid_at=timestamps.parse(cells[self.paid_at], labels[self.paid_at]),
            shipped_at=timestamps.parse(cells[self.fulfilled_at], labels[self.fulfilled_at]),
            cancelled_at=timestamps.parse(cells[self.cancelled_at], labels[self.cancelled_at]),
            discount_codes=split_list(cells[self.discount_code]),
            tags=split_list(cells[self.tags]),
            attributes=self._attributes(cells),
            refunded=refunded,
        )
        order.customer = self._customer(line, cells, email, order, warnings)
        return order

    def _market(self, line: int, cells: list[str], warnings: list[Problem]) -> str | None:
        for position in (self.shipping_country, self.billing_country):
            text = cells[position].strip()
            if not text:
                continue
            code = country_code(text)
            if code is not None:
                return code
            reason = "not a two-letter country code; market left empty"
            warnings.append(Problem(line, self.labels[position], text, reason))
            return None
        return None

    def _attributes(self, cells: list[str]) -> dict[str, Any]:
        attributes: dict[str, Any] = {}
        note = cells[self.notes].strip()
        if note:
            attributes["note"] = note
        note_attributes = cells[self.note_attributes].strip()
        if note_attributes:
            attributes["note_attributes"] = parse_note_attributes(note_attributes)
        for key, position in (("shipping_method", self.shipping_method),
                              ("payment_method", self.payment_method)):  # fmt: skip
            value = cells[position].strip()
            if value:
                attributes[key] = value
        return attributes

    def _customer(
        self, line: int, cells: list[str], email: str | None, order: OrderIn,
        warnings: list[Problem],
    ) -> CustomerIn | None:  # fmt: skip
        labels = self.labels
        region = country_code(cells[self.billing_country]) or country_code(
            cells[self.shipping_country]
        )
        phone = None
        for position in (self.phone, self.billing_phone):
            text = cells[position]
            if not text.strip():
                continue
            try:
                phone = self.phones.parse(text, region, labels[position])
            except CellProblem as problem:
                warnings.append(Problem(line, problem.column, problem.value,
                                        f"{problem.reason}; the phone was left out"))  # fmt: skip
                continue
            break
        if email is None and phone is None:
            return None
        customer = CustomerIn(source=SOURCE, email=email, phone=phone, country=region)
        billing_name = cells[self.billing_name].strip()
        if billing_name:
            first, _, last = billing_name.partition(" ")
            if len(first) > 200 or len(last.strip()) > 200:
                warnings.append(Problem(line, labels[self.billing_name], billing_name,
                                        "name longer than 200 characters; left out"))  # fmt: skip
            else:
                customer.first_name = first
                customer.last_name = last.strip() or None
        try:
            accepts = parse_yes_no(cells[self.accepts_marketing], labels[self.accepts_marketing])
        except CellProblem as problem:
            warnings.append(Problem(line, problem.column, problem.value,
                                    f"{problem.reason}; no consent recorded"))  # fmt: skip
            accepts = None
        if accepts is not None:
            status = "subscribed" if accepts else "not_subscribed"
            customer.consents = {"email": ConsentIn(status, CONSENT_SOURCE, order.placed_at)}
        return customer

    def _line(self, cells: list[str]) -> LineIn:
        quantity_text, title, price_text = (
            cells[self.quantity],
            cells[self.title].strip(),
            cells[self.price],
        )
        labels = self.labels
        if not (quantity_text or title or price_text):
            reason = "the row has no line item (quantity, name and price are empty)"
            raise CellProblem(labels[self.title], "", reason)
        unit_price = parse_decimal(price_text, labels[self.price])
        if unit_price is None:
            raise CellProblem(labels[self.price], "", "the line item price is empty")
        quantity = parse_quantity(quantity_text, labels[self.quantity])
        sku = cells[self.sku].strip() or None
        if sku is not None:
            limit(sku, 128, labels[self.sku])
        discount = parse_decimal(cells[self.line_discount], labels[self.line_discount]) or ZERO
        restocked = cells[self.line_status].strip().lower() == "restocked"
        return LineIn(
            title=title or sku or "", quantity=quantity, unit_price=unit_price, sku=sku,
            discount=discount, refunded_quantity=quantity if restocked else 0,
        )  # fmt: skip


def parse_note_attributes(text: str) -> dict[str, str]:
    """Shopify's `Note Attributes` cell (`key: value` per line) as a dict.

    A line without a colon continues the value above it (a value that itself held a line break).
    """
    attributes: dict[str, str] = {}
    key = ""
    for raw_line in text.splitlines():
        if not raw_line.strip():
            continue
        name, separator, value = raw_line.partition(":")
        if separator and name.strip():
            key = name.strip()
            attributes[key] = value.strip()
        elif key:
            attributes[key] = f"{attributes[key]}\n{raw_line.strip()}"
        else:
            key = raw_line.strip()
            attributes[key] = ""
    return attributes


def import_shopify_orders(
    path: str | Path,
    *,
    store_id: int,
    engine: Engine | None = None,
    report_path: str | Path | None = None,
    chunk_size: int = CHUNK_SIZE,
    progress: Progress | None = None,
    encoding: str = "utf-8-sig",
) -> ImportSummary:
    """Import a Shopify order CSV export into the store; see docs/importing.md."""
    source = Path(path)

    def prepare(csv_file: CsvFile) -> OrderImport:
        builder = ShopifyOrderRows(csv_file.header)
        return OrderImport(csv_file, builder, store_id=store_id, engine=engine,
                           chunk_size=chunk_size, progress=progress)  # fmt: skip

    return run_import(
        "shopify-orders", source,
        report_path=Path(report_path) if report_path else None,
        open_file=lambda: CsvFile(source, encoding=encoding, progress=progress),
        prepare=prepare,
    )  # fmt: skip
