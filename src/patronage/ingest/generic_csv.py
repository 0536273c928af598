"""Any CSV of orders or customers, described by a column map (JSON or YAML).

A map names, for each Patronage field, the header of the column that holds it:

    source: erp                  # orders.source / the customers' identity system (default "csv")
    timezone: Europe/Berlin      # for timestamps without an offset (default: the store's)
    timestamp_format: "%d.%m.%Y %H:%M"   # optional strptime pattern (default: ISO 8601 / Shopify)
    delimiter: ";"               # default ","
    columns: {external_id: Order No, placed_at: Date, total: Gross, line.title: Article, ...}
    attributes: {sales_rep: Sales Rep}   # extra columns kept as attributes
    defaults: {currency: EUR}    # orders only: the value when the column is absent or blank

Order files hold one row per order or one row per line (rows grouped by `external_id`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Engine

from patronage.customers.schemas import ConsentIn, CustomerIn
from patronage.db.session import session_scope
from patronage.errors import PatronageError
from patronage.ingest.csv_common import (
    CHUNK_SIZE,
    CellProblem,
    CsvFile,
    CustomerColumns,
    CustomerImport,
    CustomerRowBuilder,
    HeaderMap,
    ImportSummary,
    OrderImport,
    PhoneParser,
    Problem,
    Progress,
    RecordRejected,
    SourceRow,
    TimestampParser,
    UnreadableFileError,
    country_code,
    currency_cell,
    email_cell,
    file_time,
    limit,
    parse_decimal,
    parse_quantity,
    parse_yes_no,
    run_import,
    split_list,
    strip_apostrophe,
)
from patronage.kit.times import as_utc
from patronage.orders.schemas import ZERO, LineIn, OrderIn
from patronage.stores.service import get_store

ORDER_FIELDS = {
    "external_id": "the order's id in the source system (rows with the same id form one order)",
    "name": "the order number shown to people (#1001)",
    "placed_at": "when the order was placed",
    "currency": "ISO 4217 code of the amounts",
    "total": "amount paid, after discounts, with shipping and tax",
    "subtotal": "amount of the lines after discounts",
    "discount": "order discount", "shipping": "shipping charged", "tax": "tax charged",
    "refunded": "amount refunded so far",
    "email": "customer's email", "phone": "customer's phone", "first_name": "customer's first name",
    "last_name": "customer's last name", "country": "customer's country (two-letter code)",
    "accepts_marketing": "yes/no: the customer accepts email marketing",
    "market": "market (two-letter country code)", "channel": "sales channel (web, pos, …)",
    "financial_status": "paid, pending, refunded, …", "fulfillment_status": "fulfilled, …",
    "paid_at": "when it was paid", "shipped_at": "when it was shipped",
    "delivered_at": "when it was delivered", "cancelled_at": "when it was cancelled",
    "carrier": "shipping carrier", "tracking_number": "tracking number",
    "promised_delivery_date": "promised delivery date",
    "discount_codes": "comma-separated discount codes", "tags": "comma-separated tags",
    "line.title": "line item title", "line.quantity": "line item quantity (default 1)",
    "line.unit_price": "line item unit price", "line.sku": "line item SKU",
    "line.discount": "discount on the whole line", "line.external_id": "line item id",
    "line.category": "product category",
}  # fmt: skip
CUSTOMER_FIELDS = {
    "external_id": "the customer's id in the source system (an identity `source:id`)",
    "email": "email", "phone": "phone (read as of `country`)", "first_name": "first name",
    "last_name": "last name", "country": "two-letter country code", "language": "language",
    "timezone": "IANA time zone", "currency": "preferred currency", "birthday": "birthday",
    "tags": "comma-separated tags",
    "accepts_email_marketing": "yes/no", "accepts_sms_marketing": "yes/no",
    "accepts_whatsapp_marketing": "yes/no",
    "consent_recorded_at": "when the consent columns were true (default: the file's time)",
}  # fmt: skip
REQUIRED_ORDER_FIELDS = ("external_id", "placed_at", "total")
SETTINGS = ("kind", "source", "delimiter", "encoding", "timezone", "timestamp_format", "columns",
            "attributes", "defaults")  # fmt: skip
_LINE_FIELD = re.compile(r"^lines\[(\d+)\]\.(\w+)$")


class ColumnMapError(PatronageError):
    """The column map cannot be used: unknown fields, missing required ones, bad settings."""


@dataclass
class ColumnMap:
    """Which column holds which field, plus reading settings."""

    columns: dict[str, str]
    attributes: dict[str, str] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)
    source: str = "csv"
    delimiter: str = ","
    encoding: str = "utf-8-sig"
    timezone: str | None = None
    timestamp_format: str | None = None


def load_column_map(
    path: str | Path | None = None,
    *,
    kind: str,
    overrides: Sequence[str] = (),
    defaults: Sequence[str] = (),
) -> ColumnMap:
    """Read a JSON or YAML column map, apply `field=Header` overrides and `field=value` defaults."""
    data: dict[str, Any] = {}
    if path is not None:
        data = _read_map_file(Path(path))
    unknown = sorted(set(data) - set(SETTINGS))
    if unknown:
        raise ColumnMapError(f"unknown setting(s) in the column map: {', '.join(unknown)}; "
                             f"known: {', '.join(SETTINGS)}")  # fmt: skip
    if data.get("kind") not in (None, kind):
        raise ColumnMapError(f"this column map is for {data['kind']}, not {kind}")
    columns = _string_mapping(data.get("columns"), "columns")
    columns.update(_pairs(overrides, "--column takes field=Header"))
    known = ORDER_FIELDS if kind == "orders" else CUSTOMER_FIELDS
    bad = sorted(set(columns) - set(known))
    if bad:
        raise ColumnMapError(f"unknown {kind} field(s): {', '.join(bad)}; "
                             f"known: {', '.join(known)}")  # fmt: skip
    merged_defaults = _string_mapping(data.get("defaults"), "defaults")
    merged_defaults.update(_pairs(defaults, "--default takes field=value"))
    if kind == "customers" and merged_defaults:
        raise ColumnMapError("defaults are supported in order maps only")
    bad_defaults = sorted(set(merged_defaults) - set(known))
    if bad_defaults:
        raise ColumnMapError(f"unknown field(s) in defaults: {', '.join(bad_defaults)}")
    if kind == "orders":
        missing = [name for name in REQUIRED_ORDER_FIELDS if name not in columns]
        if "currency" not in columns and "currency" not in merged_defaults:
            missing.append("currency (a column or a default)")
        if any(name.startswith("line.") for name in columns) and "line.unit_price" not in columns:
            missing.append("line.unit_price (when any line field is mapped)")
        if missing:
            raise ColumnMapError(f"the column map lacks required field(s): {', '.join(missing)}")
    elif not {"external_id", "email", "phone"} & set(columns):
        raise ColumnMapError("a customer map needs at least one of external_id, email, phone")
    source = str(data.get("source") or "csv")
    if len(source) > 32:
        raise ColumnMapError("source is longer than 32 characters")
    timezone = data.get("timezone")
    if timezone is not None:
        _zone(str(timezone))
    delimiter = str(data.get("delimiter") or ",")
    if len(delimiter) != 1:
        raise ColumnMapError(f"delimiter must be one character, got {delimiter!r}")
    return ColumnMap(
        columns=columns, attributes=_string_mapping(data.get("attributes"), "attributes"),
        defaults=merged_defaults, source=source, delimiter=delimiter,
        encoding=str(data.get("encoding") or "utf-8-sig"),
        timezone=str(timezone) if timezone is not None else None,
        timestamp_format=str(data["timestamp_format"]) if data.get("timestamp_format") else None,
    )  # fmt: skip


def _read_map_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ColumnMapError(f"cannot read the column map {path}: {error.strerror}") from error
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as error:  # yaml and json raise their own error types
        raise ColumnMapError(f"the column map {path} is not valid: {error}") from error
    if not isinstance(data, dict):
        raise ColumnMapError(f"the column map {path} must be a mapping of settings")
    return data


def _pairs(texts: Sequence[str], usage: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for text in texts:
        name, separator, value = text.partition("=")
        if not separator or not name.strip() or not value.strip():
            raise ColumnMapError(f"{usage}, got {text!r}")
        pairs[name.strip()] = value.strip()
    return pairs


def _string_mapping(value: Any, name: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ColumnMapError(f"{name} must map names to column headers")
    return {str(key): str(item) for key, item in value.items() if item is not None}


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ColumnMapError(f"unknown time zone in the column map: {name!r}") from error


def _check_headers(header: HeaderMap, column_map: ColumnMap, what: str) -> None:
    wanted = [*column_map.columns.values(), *column_map.attributes.values()]
    missing = [name for name in dict.fromkeys(wanted) if not header.has(name)]
    if missing:
        raise UnreadableFileError(
            f"the {what} file lacks column(s) named in the column map: {', '.join(missing)}"
            f" (found: {', '.join(label for label in header.labels if label)[:300]})"
        )


class MappedOrderRows:
    """Builds an OrderIn from the rows of one order of a file described by a column map."""

    def __init__(
        self, header: HeaderMap, column_map: ColumnMap, *, default_timezone: tzinfo
    ) -> None:
        _check_headers(header, column_map, "order")
        self.header = header
        self.column_map = column_map
        self.labels = [*header.labels, ""]
        self.position = {name: header.index(column) for name, column in column_map.columns.items()}
        self.defaults = {"line.quantity": "1", **column_map.defaults}
        self.attribute_positions = [(key, header.index(column))
                                    for key, column in column_map.attributes.items()]  # fmt: skip
        self.key_index = self.position["external_id"]
        self.key_label = self.labels[self.key_index]
        self.total_index = self.position["total"]
        self.line_positions = [position for name, position in self.position.items()
                               if name.startswith("line.")]  # fmt: skip
        self.has_lines = bool(self.line_positions)
        self.timestamps = TimestampParser(
            default_timezone=default_timezone, pattern=column_map.timestamp_format
        )
        self.phones = PhoneParser()
        self._line_rows: list[int] = []
        self._head_line = 0

    def is_head(self, cells: list[str]) -> bool:
        """The first row of an order with a total carries the order fields."""
        return bool(cells[self.total_index])

    def _text(self, cells: list[str], name: str) -> str:
        position = self.position.get(name)
        text = cells[position].strip() if position is not None else ""
        return text or self.defaults.get(name, "")

    def _label(self, name: str) -> str:
        position = self.position.get(name)
        return self.labels[position] if position is not None else name

    def build(self, rows: Sequence[SourceRow], warnings: list[Problem]) -> OrderIn:
        """The order described by `rows`, or RecordRejected naming every bad cell."""
        head = next((row for row in rows if self.is_head(row[1])), None)
        if head is None:
            raise RecordRejected([Problem(rows[0][0], self._label("total"), "",
                                          "no row of this order has a total")])  # fmt: skip
        self._head_line = head[0]
        problems: list[Problem] = []
        order: OrderIn | None = None
        try:
            order = self._order(head[0], head[1], warnings)
        except CellProblem as problem:
            problems.append(Problem(head[0], problem.column, problem.value, problem.reason))
        lines: list[LineIn] = []
        self._line_rows = []
        if self.has_lines:
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
        return order

    def locate(self, field_name: str, rows: Sequence[SourceRow]) -> tuple[int, str]:
        """The (line, column) behind a validation field such as `total` or `lines[2].unit_price`."""
        match = _LINE_FIELD.match(field_name)
        if match:
            index = int(match.group(1)) - 1
            line = self._line_rows[index] if index < len(self._line_rows) else self._head_line
            return line, self._label(f"line.{match.group(2)}")
        return self._head_line, self._label(field_name) if field_name else ""

    def _order(self, line: int, cells: list[str], warnings: list[Problem]) -> OrderIn:
        text, label, timestamps = self._text, self._label, self.timestamps

        def money(name: str) -> Any:
            return parse_decimal(text(cells, name), label(name))

        def moment(name: str) -> datetime | None:
            return timestamps.parse(text(cells, name), label(name))

        def bounded(name: str, length: int, lower: bool = False) -> str | None:
            value = text(cells, name)
            return limit(value.lower() if lower else value, length, label(name)) or None

        external_id = limit(strip_apostrophe(text(cells, "external_id")), 64, label("external_id"))
        currency = currency_cell(text(cells, "currency"), label("currency"))
        if currency is None:
            raise CellProblem(label("currency"), "", "the currency is empty")
        placed_at = moment("placed_at")
        if placed_at is None:
            raise CellProblem(label("placed_at"), "", "the order date is empty")
        total = money("total")
        if total is None:
            raise CellProblem(label("total"), "", "the total is empty")
        email = email_cell(text(cells, "email"), label("email"))
        market_text = text(cells, "market")
        market = country_code(market_text)
        if market_text and market is None:
            reason = "not a two-letter country code; market left empty"
            warnings.append(Problem(line, label("market"), market_text, reason))
        order = OrderIn(
            source=self.column_map.source, external_id=external_id, currency=currency,
            placed_at=placed_at, total=total, subtotal=money("subtotal"),
            discount=money("discount") or ZERO, shipping=money("shipping") or ZERO,
            tax=money("tax") or ZERO, name=bounded("name", 64), email=email, market=market,
            channel=bounded("channel", 64),
            financial_status=bounded("financial_status", 32, lower=True),
            fulfillment_status=bounded("fulfillment_status", 32, lower=True),
            paid_at=moment("paid_at"), shipped_at=moment("shipped_at"),
            delivered_at=moment("delivered_at"), cancelled_at=moment("cancelled_at"),
            carrier=bounded("carrier", 64), tracking_number=bounded("tracking_number", 128),
            promised_delivery_date=timestamps.parse_date(
                text(cells, "promised_delivery_date"), label("promised_delivery_date")),
            discount_codes=split_list(text(cells, "discount_codes")),
            tags=split_list(text(cells, "tags")),
            attributes={key: cells[position].strip() for key, position in self.attribute_positions
                        if cells[position].strip()},
            refunded=money("refunded"),
        )  # fmt: skip
        order.customer = self._customer(line, cells, email, placed_at, warnings)
        return order

    def _customer(
        self, line: int, cells: list[str], email: str | None, placed_at: datetime,
        warnings: list[Problem],
    ) -> CustomerIn | None:  # fmt: skip
        text, label = self._text, self._label
        country_text = text(cells, "country")
        country = country_code(country_text)
        if country_text and country is None:
            warnings.append(Problem(line, label("country"), country_text,
                                    "not a two-letter country code; left out"))  # fmt: skip
        phone = None
        phone_text = text(cells, "phone")
        if phone_text:
            try:
                phone = self.phones.parse(phone_text, country, label("phone"))
            except CellProblem as problem:
                warnings.append(Problem(line, problem.column, problem.value,
                                        f"{problem.reason}; the phone was left out"))  # fmt: skip
        if email is None and phone is None:
            return None
        customer = CustomerIn(source=self.column_map.source, email=email, phone=phone,
                              country=country)  # fmt: skip
        for name in ("first_name", "last_name"):
            value = text(cells, name)
            if len(value) > 200:
                warnings.append(Problem(line, label(name), value,
                                        "longer than 200 characters; left out"))  # fmt: skip
            elif value:
                setattr(customer, name, value)
        try:
            accepts = parse_yes_no(text(cells, "accepts_marketing"), label("accepts_marketing"))
        except CellProblem as problem:
            warnings.append(Problem(line, problem.column, problem.value,
                                    f"{problem.reason}; no consent recorded"))  # fmt: skip
            accepts = None
        if accepts is not None:
            status = "subscribed" if accepts else "not_subscribed"
            customer.consents = {"email": ConsentIn(status, f"{self.column_map.source}_csv",
                                                    placed_at)}  # fmt: skip
        return customer

    def _line(self, cells: list[str]) -> LineIn:
        text, label = self._text, self._label
        if not any(cells[position] for position in self.line_positions):
            raise CellProblem(label("line.title"), "", "the row has no line item")
        unit_price = parse_decimal(text(cells, "line.unit_price"), label("line.unit_price"))
        if unit_price is None:
            raise CellProblem(label("line.unit_price"), "", "the line price is empty")
        sku = limit(text(cells, "line.sku"), 128, label("line.sku")) or None
        return LineIn(
            title=text(cells, "line.title") or sku or "",
            quantity=parse_quantity(text(cells, "line.quantity"), label("line.quantity")),
            unit_price=unit_price, sku=sku,
            external_id=limit(text(cells, "line.external_id"), 64, label("line.external_id"))
            or None,
            category=limit(text(cells, "line.category"), 200, label("line.category")) or None,
            discount=parse_decimal(text(cells, "line.discount"), label("line.discount")) or ZERO,
        )  # fmt: skip


def mapped_customer_columns(header: HeaderMap, column_map: ColumnMap) -> CustomerColumns:
    """Customer field positions from a column map."""
    _check_headers(header, column_map, "customer")
    columns = column_map.columns

    def at(name: str) -> int:
        return header.index(columns[name]) if name in columns else header.blank

    def optional(name: str) -> int | None:
        return header.index(columns[name]) if name in columns else None

    consents = {channel: at(f"accepts_{channel}_marketing")
                for channel in ("email", "sms", "whatsapp")
                if f"accepts_{channel}_marketing" in columns}  # fmt: skip
    return CustomerColumns(
        labels=[*header.labels, ""], email=at("email"), phones=[at("phone")],
        first_name=at("first_name"), last_name=at("last_name"), country=at("country"),
        tags=at("tags"), identity_kind="external" if "external_id" in columns else None,
        identity=optional("external_id"), identity_prefix=f"{column_map.source}:",
        language=optional("language"), timezone=optional("timezone"),
        currency=optional("currency"), birthday=optional("birthday"), consents=consents,
        consent_recorded_at=optional("consent_recorded_at"),
        attributes=[(key, header.index(column)) for key, column in column_map.attributes.items()],
    )  # fmt: skip


def _store_timezone(engine: Engine | None, store_id: int, column_map: ColumnMap) -> tzinfo:
    if column_map.timezone:
        return _zone(column_map.timezone)
    with session_scope(engine) as session:
        return ZoneInfo(get_store(session, store_id).timezone)


def import_orders_csv(
    path: str | Path,
    *,
    store_id: int,
    column_map: ColumnMap,
    engine: Engine | None = None,
    report_path: str | Path | None = None,
    chunk_size: int = CHUNK_SIZE,
    progress: Progress | None = None,
) -> ImportSummary:
    """Import orders from any CSV described by `column_map`; see docs/importing.md."""
    source = Path(path)

    def prepare(csv_file: CsvFile) -> OrderImport:
        zone = _store_timezone(engine, store_id, column_map)
        builder = MappedOrderRows(csv_file.header, column_map, default_timezone=zone)
        return OrderImport(csv_file, builder, store_id=store_id, engine=engine,
                           chunk_size=chunk_size, progress=progress)  # fmt: skip

    return run_import(
        "orders-csv", source, report_path=Path(report_path) if report_path else None,
        open_file=lambda: CsvFile(source, encoding=column_map.encoding,
                                  delimiter=column_map.delimiter, progress=progress),
        prepare=prepare,
    )  # fmt: skip


def import_customers_csv(
    path: str | Path,
    *,
    store_id: int,
    column_map: ColumnMap,
    engine: Engine | None = None,
    report_path: str | Path | None = None,
    as_of: datetime | None = None,
    chunk_size: int = CHUNK_SIZE,
    progress: Progress | None = None,
) -> ImportSummary:
    """Import customers from any CSV described by `column_map`; see docs/importing.md."""
    source = Path(path)
    consent_time = as_utc(as_of) if as_of is not None else file_time(source)

    def prepare(csv_file: CsvFile) -> CustomerImport:
        zone = _store_timezone(engine, store_id, column_map)
        builder = CustomerRowBuilder(
            mapped_customer_columns(csv_file.header, column_map), source=column_map.source,
            consent_source=f"{column_map.source}_csv", as_of=consent_time,
            timestamps=TimestampParser(default_timezone=zone,
                                       pattern=column_map.timestamp_format),
        )  # fmt: skip
        return CustomerImport(csv_file, builder, store_id=store_id, engine=engine,
                              chunk_size=chunk_size, progress=progress)  # fmt: skip

    summary = run_import(
        "customers-csv", source, report_path=Path(report_path) if report_path else None,
        open_file=lambda: CsvFile(source, encoding=column_map.encoding,
                                  delimiter=column_map.delimiter, progress=progress),
        prepare=prepare,
    )  # fmt: skip
    summary.notes.append(f"consent recorded as of {consent_time.isoformat()} unless stated")
    return summary
