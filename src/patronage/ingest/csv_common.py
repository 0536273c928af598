"""What every CSV importer shares: reading and header matching, cell cleaners, the report, the runs.

Two engines live here, one for orders (rows grouped into orders by a key column) and one for
customers (one row per customer); the format modules only turn rows into `OrderIn` / `CustomerIn`.
Both stream the file, write in chunks of their own transaction and never let one bad record fail
a chunk: a record with a bad cell is rejected whole and every one of its rows is reported.
"""

from __future__ import annotations

import csv
import gc
import io
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlalchemy.exc import DataError, IntegrityError, StatementError

from patronage.customers.schemas import ConsentIn, CustomerIn, normalise_email
from patronage.customers.service import resolve_customers
from patronage.db.bulk import prepare_bulk_load
from patronage.db.session import session_scope
from patronage.errors import PatronageError, ValidationFailedError
from patronage.kit.money import is_currency_code
from patronage.kit.phones import to_e164
from patronage.kit.times import check_timezone
from patronage.orders.fx import RateBook, load_rate_book
from patronage.orders.schemas import OrderIn
from patronage.orders.service import (
    refresh_aggregates,
    sync_points_of_orders,
    upsert_orders,
    validate_order,
)
from patronage.stores.models import Store
from patronage.stores.service import get_store

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))

CHUNK_SIZE = 2_000
CATCH_UP_SIZE = 20_000  # orders per transaction of the loyalty catch-up after an import
_CACHE_SIZE = 65_536  # entries of a cache of parsed cells before it starts afresh
_IMPORT_GC_THRESHOLD = 500_000  # allocations between collections of the youngest generation
ASCII_COMPATIBLE = {"utf-8", "utf-8-sig", "utf8", "latin-1", "latin1", "iso-8859-1", "cp1252",
                    "windows-1252", "ascii"}  # fmt: skip
TRUE_WORDS = frozenset({"yes", "true", "y", "1", "t"})
FALSE_WORDS = frozenset({"no", "false", "n", "0", "f"})
_THOUSANDS = re.compile(r"^-?\d{1,3}(,\d{3})+(\.\d+)?$")
_METAFIELD = re.compile(r"^(?P<label>.*?)\s*\(customer\.metafields\.(?P<key>[^()\s]+)\)\s*$")

SourceRow = tuple[int, list[str]]  # (line where the row starts, cells padded to the header)


class UnreadableFileError(PatronageError):
    """The file cannot be imported at all: missing, empty, or without the headers we need."""


class CellProblem(Exception):
    """One cell that cannot be used as given."""

    def __init__(self, column: str, value: str, reason: str) -> None:
        super().__init__(f"{column}: {reason}")
        self.column = column
        self.value = value
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Problem:
    """A problem found at one row and column of the file."""

    line: int
    column: str
    value: str
    reason: str


class RecordRejected(Exception):
    """A record (an order, a customer) cannot be imported; `problems` say where and why."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(problem.reason for problem in problems))
        self.problems = problems


# --- Headers -------------------------------------------------------------------------------


def normalise_header(text: str) -> str:
    """Header text compared case-, space- and punctuation-insensitively (`Lineitem SKU`)."""
    return "".join(character for character in text.lower() if character.isalnum())


class HeaderMap:
    """Column positions by header name; a name not in the file maps to an always-blank column."""

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = [label.strip().lstrip("\ufeff").strip() for label in labels]
        self.width = len(self.labels)
        self.blank = self.width  # rows are padded with one blank cell at this position
        self._positions: dict[str, int] = {}
        for position, label in enumerate(self.labels):
            self._positions.setdefault(normalise_header(label), position)

    def find(self, *names: str) -> int | None:
        """Position of the first of `names` present in the header, or None."""
        for name in names:
            position = self._positions.get(normalise_header(name))
            if position is not None:
                return position
        return None

    def index(self, *names: str) -> int:
        """Position of the first of `names` present, else the blank column (reads as "")."""
        position = self.find(*names)
        return self.blank if position is None else position

    def has(self, *names: str) -> bool:
        """Whether any of `names` is in the header."""
        return self.find(*names) is not None

    def label(self, position: int) -> str:
        """The header text of a position ("" for the blank column)."""
        return self.labels[position] if position < self.width else ""

    def require(self, required: Sequence[Sequence[str]], what: str) -> None:
        """Raise UnreadableFileError naming every required header (or its aliases) not found."""
        missing = [" / ".join(names) for names in required if not self.has(*names)]
        if missing:
            raise UnreadableFileError(
                f"this does not look like {what}: missing required column(s) {', '.join(missing)}"
                f" (found: {', '.join(label for label in self.labels if label)[:300]})"
            )

    def metafields(self) -> list[tuple[int, str]]:
        """Metafield columns `Label (customer.metafields.ns.key)` as (position, "ns.key")."""
        found = []
        for position, label in enumerate(self.labels):
            match = _METAFIELD.match(label)
            if match:
                found.append((position, match.group("key")))
        return found


# --- Reading ---------------------------------------------------------------------------------


class Progress(Protocol):
    """Where an import reports how far it has read (the CLI shows a Rich bar)."""

    def start(self, description: str, total_bytes: int) -> None:
        """A pass over the file begins."""

    def advance_to(self, bytes_read: int) -> None:
        """This many bytes of the file have been read."""


class NoProgress:
    """Progress that shows nothing."""

    def start(self, description: str, total_bytes: int) -> None:
        """Ignore the start of a pass."""

    def advance_to(self, bytes_read: int) -> None:
        """Ignore progress."""


_PROGRESS_EVERY = 1_024  # rows between progress updates


class CsvFile:
    """A CSV file read as a stream of rows, each padded to the header width plus one blank cell."""

    def __init__(
        self,
        path: Path,
        *,
        encoding: str = "utf-8-sig",
        delimiter: str = ",",
        progress: Progress | None = None,
        description: str = "importing",
    ) -> None:
        self.path = path
        self.encoding = encoding
        self.delimiter = delimiter
        self.progress = progress or NoProgress()
        self.description = description
        self.header_line = 0
        self.rows_read = 0
        self.broken: Problem | None = None  # where the CSV became unreadable, if it did
        self._binary: io.BufferedReader | None = None
        self._text: io.TextIOWrapper | None = None
        self._reader: Any = None
        self.header = HeaderMap([])

    def __enter__(self) -> CsvFile:
        try:
            self._binary = open(self.path, "rb")  # closed in __exit__
        except FileNotFoundError as error:
            raise UnreadableFileError(f"file not found: {self.path}") from error
        except OSError as error:
            raise UnreadableFileError(f"cannot read {self.path}: {error.strerror}") from error
        try:
            # The plain UTF-8 decoder is faster; HeaderMap drops a byte-order mark itself.
            encoding = "utf-8" if self.encoding.lower() == "utf-8-sig" else self.encoding
            self._text = io.TextIOWrapper(
                self._binary, encoding=encoding, errors="replace", newline=""
            )
            self._reader = csv.reader(self._text, delimiter=self.delimiter)
            for cells in self._reader:
                if any(cell.strip() for cell in cells):
                    self.header = HeaderMap(cells)
                    self.header_line = self._reader.line_num
                    break
        except (csv.Error, UnicodeError, LookupError, TypeError) as error:
            self.close()
            raise UnreadableFileError(f"{self.path} is not a readable CSV file: {error}") from error
        if not self.header.width:
            self.close()
            raise UnreadableFileError(f"{self.path} is empty: no header row")
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the file."""
        if self._text is not None:
            self._text.detach()
            self._text = None
        if self._binary is not None:
            self._binary.close()
            self._binary = None

    def rows(self) -> Iterator[SourceRow]:
        """Yield (line where the row starts, cells) for every non-blank row after the header."""
        reader, binary, progress = self._reader, self._binary, self.progress
        assert reader is not None and binary is not None
        total = self.path.stat().st_size
        progress.start(self.description, total)
        width = self.header.width
        previous_line = reader.line_num
        count = 0
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                break
            except (csv.Error, UnicodeError) as error:
                # The rest of the file cannot be split into rows; the importer reports it and stops.
                self.broken = Problem(
                    previous_line + 1, "", "", f"unreadable CSV from here: {error}"
                )
                break
            start = previous_line + 1
            previous_line = reader.line_num
            if not any(cells):
                continue
            count += 1
            if len(cells) != width:
                cells = cells[:width] + [""] * (width - len(cells))
            cells.append("")
            if count % _PROGRESS_EVERY == 0:
                progress.advance_to(binary.tell())
            yield start, cells
        self.rows_read = count
        progress.advance_to(total)


def scan_keys(
    path: Path,
    *,
    key_index: int,
    header_line: int,
    normalise: Callable[[str], str] = str.strip,
    encoding: str = "utf-8-sig",
    delimiter: str = ",",
    progress: Progress | None = None,
) -> tuple[set[str], set[str]]:
    """Return the keys on more than one row and the keys whose rows are not all consecutive.

    A fast pass over the raw bytes: a record that has no quote is split on the delimiter; one with
    quotes (possibly spanning lines, tracked by quote parity) goes through the csv module.
    """
    progress = progress or NoProgress()
    total = path.stat().st_size
    progress.start("scanning", total)
    fast = encoding.lower().replace("_", "-") in ASCII_COMPATIBLE and len(delimiter) == 1
    repeated: set[str] = set()
    scattered: set[str] = set()
    seen: set[str] = set()
    previous = ""

    def note(key: str) -> None:
        nonlocal previous
        if key == previous or not key:
            if key:
                repeated.add(key)
            previous = key or previous
            return
        if key in seen:
            repeated.add(key)
            scattered.add(key)
        else:
            seen.add(key)
        previous = key

    def key_of(cells: list[str]) -> str:
        return normalise(cells[key_index]) if key_index < len(cells) else ""

    if not fast:
        with CsvFile(path, encoding=encoding, delimiter=delimiter) as source:
            for _, cells in source.rows():
                note(key_of(cells))
        progress.advance_to(total)
        return repeated, scattered

    delimiter_bytes = delimiter.encode()
    blank = b" \t\r\n" + delimiter_bytes
    quote = b'"'
    # As CsvFile reads it: a byte-order mark matters only before the header.
    key_encoding = "utf-8" if encoding.lower().replace("_", "-") == "utf-8-sig" else encoding
    previous_raw: bytes | None = None  # the undecoded key cell of `previous`, on a plain line
    with open(path, "rb") as handle:
        for _ in range(header_line):
            handle.readline()
        pending: list[bytes] = []
        open_quotes = 0
        count = 0
        for line in handle:
            count += 1
            if count % 4096 == 0:
                progress.advance_to(handle.tell())
            if pending or quote in line:
                previous_raw = None
            if pending:
                pending.append(line)
                open_quotes ^= line.count(quote) & 1
                if not open_quotes:
                    record = b"".join(pending).decode(encoding, errors="replace")
                    pending = []
                    for cells in csv.reader(io.StringIO(record, newline=""), delimiter=delimiter):
                        note(key_of(cells))
                continue
            if quote in line:
                open_quotes = line.count(quote) & 1
                if open_quotes:
                    pending = [line]
                    continue
                text = line.decode(encoding, errors="replace")
                for cells in csv.reader([text], delimiter=delimiter):
                    note(key_of(cells))
                continue
            parts = line.split(delimiter_bytes, key_index + 1)
            raw = parts[key_index] if key_index < len(parts) else b""
            if raw == previous_raw:
                repeated.add(previous)  # another row of the order on the line before
                continue
            key = normalise(raw.decode(key_encoding, errors="replace"))
            if not key and not line.strip(blank):
                continue  # a blank line, skipped by the import too
            note(key)
            previous_raw = raw if key else None
    progress.advance_to(total)
    return repeated, scattered


# --- Cells -----------------------------------------------------------------------------------


def strip_apostrophe(text: str) -> str:
    """Trim a cell and drop the leading apostrophe spreadsheets use to keep `'0123` as text."""
    text = text.strip()
    return text[1:].strip() if text.startswith("'") else text


def parse_yes_no(text: str, column: str) -> bool | None:
    """yes/no, true/false, y/n, 1/0 (any case); blank gives None."""
    cleaned = text.strip().lower()
    if not cleaned:
        return None
    if cleaned in TRUE_WORDS:
        return True
    if cleaned in FALSE_WORDS:
        return False
    raise CellProblem(column, text, f"not yes/no: {text!r}")


_amounts: dict[str, Decimal] = {}  # cell text -> amount; exports repeat prices and zeros a lot


def parse_decimal(text: str, column: str) -> Decimal | None:
    """A bare decimal amount (`12.50`, `1,234.50`); blank gives None."""
    known = _amounts.get(text)
    if known is not None:
        return known
    cleaned = text.strip()
    if not cleaned:
        return None
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        if not _THOUSANDS.match(cleaned):
            raise CellProblem(column, text, f"not an amount: {text!r}") from None
        value = Decimal(cleaned.replace(",", ""))
    if not value.is_finite() or "_" in cleaned:
        raise CellProblem(column, text, f"not an amount: {text!r}")
    if len(_amounts) >= _CACHE_SIZE:
        _amounts.clear()
    _amounts[text] = value
    return value


def parse_quantity(text: str, column: str) -> int:
    """A whole, plausible quantity; blank is a problem."""
    cleaned = text.strip()
    try:
        quantity = int(cleaned)
    except ValueError:
        value = parse_decimal(cleaned, column)
        if value is None:
            raise CellProblem(column, text, "quantity is empty") from None
        if value != value.to_integral_value():
            raise CellProblem(column, text, f"not a whole quantity: {text!r}") from None
        quantity = int(value)
    if abs(quantity) > 1_000_000:
        raise CellProblem(column, text, f"implausible quantity: {text!r}")
    return quantity


def limit(text: str, length: int, column: str) -> str:
    """Return `text` if it fits the column it is stored in, else raise a CellProblem."""
    if len(text) > length:
        raise CellProblem(column, text, f"longer than {length} characters")
    return text


def split_list(text: str) -> list[str]:
    """Split `A, B, A` into ["A", "B"]: trimmed, without blanks or repeats."""
    if not text:
        return []
    return list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))


def currency_cell(text: str, column: str) -> str | None:
    """An ISO 4217 code in capitals; blank gives None."""
    code = text.strip().upper()
    if not code:
        return None
    if not is_currency_code(code):
        raise CellProblem(column, text, f"not an ISO 4217 currency code: {text!r}")
    return code


def country_code(text: str) -> str | None:
    """A two-letter country code in capitals, or None when the cell is not one."""
    cleaned = text.strip().upper()
    if len(cleaned) == 2 and cleaned.isascii() and cleaned.isalpha():
        return cleaned
    return None


class TimestampParser:
    """Parses timestamp cells with a small cache (exports repeat the same moments on many rows)."""

    def __init__(
        self, *, default_timezone: tzinfo = UTC, pattern: str | None = None, size: int = 4_096
    ) -> None:
        self.default_timezone = default_timezone
        self.pattern = pattern
        self.size = size
        self._cache: dict[str, datetime] = {}

    def parse(self, text: str, column: str) -> datetime | None:
        """Aware UTC from `2026-06-24 22:58:34 +0530`, ISO 8601 or the pattern; blank gives None."""
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        cleaned = text.strip()
        if not cleaned:
            return None
        try:
            parsed = self._parse(cleaned)
        except (ValueError, OverflowError):
            raise CellProblem(column, text, f"not a timestamp: {text!r}") from None
        if len(self._cache) >= self.size:
            self._cache.clear()
        self._cache[text] = parsed
        return parsed

    def _parse(self, cleaned: str) -> datetime:
        if self.pattern:
            parsed = datetime.strptime(cleaned, self.pattern)
        else:
            try:
                parsed = datetime.fromisoformat(cleaned.replace("Z", "+00:00"))
            except ValueError:
                parsed = _parse_with_patterns(cleaned)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=self.default_timezone)
        result = parsed.astimezone(UTC)
        if not 1970 <= result.year <= 2200:
            raise ValueError("out of range")
        return result

    def parse_date(self, text: str, column: str) -> date | None:
        """A calendar date (`2026-06-24`, or the date of a timestamp); blank gives None."""
        cleaned = text.strip()
        if not cleaned:
            return None
        try:
            return date.fromisoformat(cleaned[:10])
        except ValueError:
            moment = self.parse(text, column)
            return None if moment is None else moment.date()


_TIMESTAMP_PATTERNS = ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M %z", "%Y-%m-%d %H:%M:%S",
                       "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d")  # fmt: skip


def _parse_with_patterns(cleaned: str) -> datetime:
    for pattern in _TIMESTAMP_PATTERNS:
        try:
            return datetime.strptime(cleaned, pattern)
        except ValueError:
            continue
    raise ValueError(cleaned)


class PhoneParser:
    """Phone cells to E.164 with a cache; a number that cannot be read is a CellProblem."""

    def __init__(self, size: int = 65_536) -> None:
        self.size = size
        self._cache: dict[tuple[str, str | None], str | None] = {}

    def parse(self, text: str, region: str | None, column: str) -> str | None:
        """E.164 for `text`, reading national numbers as of `region`; blank gives None."""
        key = (text, region)
        if key in self._cache:
            return self._cache[key]
        try:
            phone = to_e164(text, region)
        except ValueError as error:
            raise CellProblem(column, text, str(error)) from None
        if len(self._cache) >= self.size:
            self._cache.clear()
        self._cache[key] = phone
        return phone


def email_cell(text: str, column: str) -> str | None:
    """A normalised email address; blank gives None; a malformed one is a CellProblem."""
    try:
        email = normalise_email(text)
    except ValueError:
        raise CellProblem(column, text, f"not an email address: {text!r}") from None
    if email is not None and len(email) > 320:
        raise CellProblem(column, text, "email is longer than 320 characters")
    return email


def consent_of(accepts: bool | None, source: str, recorded_at: datetime) -> ConsentIn | None:
    """A consent statement from a yes/no column (yes → subscribed, no → not_subscribed)."""
    if accepts is None:
        return None
    return ConsentIn("subscribed" if accepts else "not_subscribed", source, recorded_at)


# --- Report and summary ------------------------------------------------------------------------

REPORT_COLUMNS = ("line", "column", "value", "problem", "record", "outcome")
REJECTED = "rejected"
IGNORED = "value ignored"


def default_report_path(path: Path) -> Path:
    """`orders.csv` → `orders.csv.report.csv`, next to the input."""
    return path.with_name(path.name + ".report.csv")


class ImportReport:
    """The report CSV: one row per problem, with the file line, the column and what was done."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rejected_lines: set[int] = set()
        self.warnings = 0
        self._handle: io.TextIOWrapper | None = None
        self._writer: Any = None

    def __enter__(self) -> ImportReport:
        try:
            self._handle = open(self.path, "w", newline="", encoding="utf-8")
        except OSError as error:
            raise UnreadableFileError(
                f"cannot write the report {self.path}: {error.strerror}"
            ) from error
        self._writer = csv.writer(self._handle)
        self._writer.writerow(REPORT_COLUMNS)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def reject(self, problem: Problem, record: str = "") -> None:
        """Record a rejected row."""
        self.rejected_lines.add(problem.line)
        self._write(problem, record, REJECTED)

    def ignore(self, problem: Problem, record: str = "") -> None:
        """Record a cell whose value was left out while the rest of the row was imported."""
        self.warnings += 1
        self._write(problem, record, IGNORED)

    def reject_record(self, problems: Sequence[Problem], lines: Sequence[int], record: str) -> None:
        """Reject a whole record: its problems and every other row it spans, by line."""
        culprits = sorted({problem.line for problem in problems})
        where = ", ".join(str(line) for line in culprits[:5])
        reason = f"rejected with the rest of {record} (see line {where})"
        entries = list(problems)
        entries += [Problem(line, "", "", reason) for line in lines if line not in culprits]
        for entry in sorted(entries, key=lambda problem: problem.line):
            self.reject(entry, record)

    def _write(self, problem: Problem, record: str, outcome: str) -> None:
        value = problem.value if len(problem.value) <= 200 else problem.value[:200] + "…"
        self._writer.writerow(
            (problem.line, problem.column, value, problem.reason, record, outcome)
        )


@dataclass
class ImportSummary:
    """What an import did; `records` are orders or customers, `rows` are lines of the file."""

    kind: str
    path: str
    report_path: str
    rows_read: int = 0
    records_read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected_records: int = 0
    rejected_rows: int = 0
    warnings: int = 0
    customers_created: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        """Rows read per second of the import."""
        return self.rows_read / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        """The summary as plain JSON-ready values."""
        values = asdict(self)
        values["rows_per_second"] = round(self.rows_per_second, 1)
        values["seconds"] = round(self.seconds, 3)
        return values


# --- Database errors that belong to one record --------------------------------------------------


def is_record_error(error: BaseException) -> bool:
    """Whether a database error is about the data (one bad record), not the database itself."""
    if isinstance(error, IntegrityError | DataError | ValidationFailedError):
        return True
    if isinstance(error, StatementError):
        return isinstance(error.orig, ValueError | TypeError | OverflowError)
    return False


def database_reason(error: BaseException) -> str:
    """A short reason for a database refusal."""
    original = getattr(error, "orig", None) or error
    text = str(original).strip().splitlines()[0] if str(original).strip() else type(error).__name__
    return f"the database refused it: {text[:300]}"


# --- The order engine ----------------------------------------------------------------------------


class OrderRows(Protocol):
    """Turns the rows of one order (a head row with the order fields, line rows) into an OrderIn."""

    key_index: int
    key_label: str

    def is_head(self, cells: list[str]) -> bool:
        """Whether the row carries the order-level fields."""

    def build(self, rows: Sequence[SourceRow], warnings: list[Problem]) -> OrderIn:
        """Build the order or raise RecordRejected; append ignored values to `warnings`."""

    def locate(self, field: str, rows: Sequence[SourceRow]) -> tuple[int, str]:
        """The (line, column) behind a validation field such as `total` or `lines[2].unit_price`."""


@dataclass(slots=True)
class _PreparedOrder:
    order: OrderIn
    lines: list[int]
    record: str


@dataclass(slots=True)
class _Group:
    key: str
    rows: list[tuple[int, int, list[str]]]  # (sequence, line, cells)


class OrderImport:
    """Streams an order file: groups rows by key, validates orders, upserts them in chunks."""

    report: ImportReport
    summary: ImportSummary

    def __init__(
        self,
        csv_file: CsvFile,
        builder: OrderRows,
        *,
        store_id: int,
        engine: Engine | None,
        chunk_size: int = CHUNK_SIZE,
        progress: Progress | None = None,
    ) -> None:
        self.csv_file = csv_file
        self.builder = builder
        self.store_id = store_id
        self.engine = engine
        self.chunk_size = chunk_size
        self.progress = progress
        self.pending: list[_PreparedOrder] = []
        self.recorded: list[int] = []  # ids of the orders written, for the catch-up at the end
        # (source, external id) -> (record key, first line) of the orders taken from this file
        self.identities: dict[tuple[str, str], tuple[str, int]] = {}
        with session_scope(self.engine) as session:
            store = get_store(session, self.store_id)
            self.rate_book: RateBook = load_rate_book(session, store.id, store.base_currency)

    def run(self, report: ImportReport, summary: ImportSummary) -> None:
        """Import every order of the file, then bring points and aggregates up to date."""
        self.report, self.summary = report, summary
        try:
            self._read_and_write()
        except Exception:
            # What was committed still gets its points and aggregates; the error is the news.
            with suppress(Exception):
                self._catch_up()
            raise
        self._catch_up()
        self.summary.rows_read = self.csv_file.rows_read

    def _catch_up(self) -> None:
        """Loyalty points of the written orders, then the aggregates of their customers, once.

        Done after the last chunk rather than after each one: a customer with orders in many
        chunks is refreshed once, and an import that touched most of the store's customers
        rebuilds the store's aggregates in one set-based pass.
        """
        recorded, self.recorded = sorted(set(self.recorded)), []
        customers: set[int] = set()
        for start in range(0, len(recorded), CATCH_UP_SIZE):
            with session_scope(self.engine) as session:
                store = session.get(Store, self.store_id)
                assert store is not None
                ids = recorded[start : start + CATCH_UP_SIZE]
                customers |= sync_points_of_orders(session, store, ids)
        if customers:
            with session_scope(self.engine) as session:
                store = session.get(Store, self.store_id)
                assert store is not None
                refresh_aggregates(session, store, customers)

    def _read_and_write(self) -> None:
        _, scattered = scan_keys(
            self.csv_file.path, key_index=self.builder.key_index,
            header_line=self.csv_file.header_line, encoding=self.csv_file.encoding,
            delimiter=self.csv_file.delimiter, progress=self.progress,
        )  # fmt: skip
        deferred: dict[str, _Group] = {}
        tainted: dict[str, int] = {}  # key -> line of a following row without a key
        current: _Group | None = None
        blank_run: list[SourceRow] = []
        key_index = self.builder.key_index
        sequence = 0
        follows_order = False  # whether the previous row belonged to an order
        for line, cells in self.csv_file.rows():
            sequence += 1
            key = cells[key_index].strip()
            if not key:
                # A row without a key right after an order may be one of its lines: rather than
                # import that order without it, reject the order (and report the row with it).
                if current is not None and follows_order and current.key not in tainted:
                    tainted[current.key] = line
                else:
                    blank_run.append((line, cells))
                follows_order = False
                continue
            follows_order = True
            if blank_run:
                self._reject_keyless(blank_run)
                blank_run = []
            if current is not None and key == current.key:
                current.rows.append((sequence, line, cells))
                continue
            if current is not None and current.key not in scattered:
                self._take(current, tainted.pop(current.key, None))
            if key in scattered:
                current = deferred.setdefault(key, _Group(key, []))
            else:
                current = _Group(key, [])
            current.rows.append((sequence, line, cells))
        if blank_run:
            self._reject_keyless(blank_run)
        broken = self.csv_file.broken
        if broken is not None:
            self.report.reject(broken)
            if current is not None:
                tainted.setdefault(current.key, broken.line)
        if current is not None and current.key not in scattered:
            self._take(current, tainted.pop(current.key, None))
        for group in deferred.values():
            self._take_scattered(group, tainted.pop(group.key, None))
        self._flush()

    def _reject_keyless(self, rows: list[SourceRow]) -> None:
        label = self.builder.key_label
        for line, _ in rows:
            reason = f"{label} is empty, so the row belongs to no order"
            self.report.reject(Problem(line, label, "", reason))

    def _take_scattered(self, group: _Group, tainted_by: int | None) -> None:
        """Split scattered rows into descriptions of the order; the last one wins."""
        runs: list[list[tuple[int, int, list[str]]]] = []
        for row in group.rows:
            if runs and runs[-1][-1][0] == row[0] - 1:
                runs[-1].append(row)
            else:
                runs.append([row])
        descriptions: list[list[tuple[int, int, list[str]]]] = []
        orphans: list[tuple[int, int, list[str]]] = []
        for run in runs:
            if any(self.builder.is_head(cells) for _, _, cells in run):
                descriptions.append(run)
            elif descriptions:
                descriptions[-1].extend(run)
            else:
                orphans.extend(run)
        if not descriptions:
            self._take(_Group(group.key, orphans), tainted_by)
            return
        descriptions[0][:0] = orphans
        last = descriptions[-1]
        for earlier in descriptions[:-1]:
            for _, line, _ in earlier:
                self.report.ignore(
                    Problem(line, self.builder.key_label, group.key,
                            f"order described again from line {last[0][1]}; the later rows win"),
                    group.key,
                )  # fmt: skip
        self._take(_Group(group.key, sorted(last)), tainted_by)

    def _take(self, group: _Group, tainted_by: int | None) -> None:
        rows = [(line, cells) for _, line, cells in group.rows]
        lines = [line for line, _ in rows]
        self.summary.records_read += 1
        warnings: list[Problem] = []
        try:
            if tainted_by is not None:
                raise RecordRejected([Problem(
                    tainted_by, self.builder.key_label, "",
                    f"this row has no {self.builder.key_label} but follows the rows of order "
                    f"{group.key}, which is rejected so that it is not imported incomplete",
                )])  # fmt: skip
            order = self.builder.build(rows, warnings)
            validate_order(order)
            try:
                self.rate_book.rate(order.currency, order.placed_at.date())
            except ValidationFailedError as error:
                error.extra.setdefault("field", "currency")
                raise
        except RecordRejected as rejected:
            self._reject(rejected.problems, lines, group.key)
            return
        except ValidationFailedError as error:
            line, column = self.builder.locate(str(error.extra.get("field", "")), rows)
            value = _cell_value(rows, line, column, self.csv_file.header)
            self._reject([Problem(line, column, value, error.detail)], lines, group.key)
            return
        identity = (order.source, order.external_id)
        first = self.identities.setdefault(identity, (group.key, lines[0]))
        if first[0] != group.key:
            # Two orders of one file under one platform id: the second would overwrite the first.
            line, column = self.builder.locate("external_id", rows)
            self._reject([Problem(
                line, column, order.external_id,
                f"order {first[0]} (line {first[1]}) already has this id; "
                f"two orders of one file cannot share it",
            )], lines, group.key)  # fmt: skip
            return
        for warning in warnings:
            self.report.ignore(warning, group.key)
        self.pending.append(_PreparedOrder(order, lines, group.key))
        if len(self.pending) >= self.chunk_size:
            self._flush()

    def _reject(self, problems: list[Problem], lines: list[int], record: str) -> None:
        self.summary.rejected_records += 1
        self.report.reject_record(problems, lines, record)

    def _flush(self) -> None:
        batch, self.pending = self.pending, []
        if batch:
            self._write(batch)

    def _write(self, batch: list[_PreparedOrder]) -> None:
        """Upsert a chunk in one transaction; if the database refuses it, halve it and retry."""
        try:
            with session_scope(self.engine) as session:
                prepare_bulk_load(session)
                store = session.get(Store, self.store_id)
                assert store is not None
                result = upsert_orders(
                    session, store, [prepared.order for prepared in batch],
                    rate_book=self.rate_book, validated=True, follow=False,
                )  # fmt: skip
        except Exception as error:
            if not is_record_error(error):
                raise
            if len(batch) == 1:
                prepared = batch[0]
                problem = Problem(prepared.lines[0], "", "", database_reason(error))
                self._reject([problem], prepared.lines, prepared.record)
                return
            middle = len(batch) // 2
            self._write(batch[:middle])
            self._write(batch[middle:])
            return
        self.recorded.extend(result.order_ids)
        self.summary.created += result.created
        self.summary.updated += result.updated
        self.summary.unchanged += result.unchanged
        self.summary.customers_created += result.customers_created


def _cell_value(rows: Sequence[SourceRow], line: int, column: str, header: HeaderMap) -> str:
    position = header.find(column) if column else None
    if position is None:
        return ""
    for row_line, cells in rows:
        if row_line == line:
            return cells[position]
    return ""


# --- The customer engine -------------------------------------------------------------------------


class CustomerRows(Protocol):
    """Turns one row into a CustomerIn."""

    key_index: int

    def key(self, text: str) -> str:
        """The duplicate-detection key of the key column's cell."""

    def build(self, line: int, cells: list[str], warnings: list[Problem]) -> CustomerIn:
        """Build the customer or raise RecordRejected; append ignored values to `warnings`."""


@dataclass(slots=True)
class _PreparedCustomer:
    customer: CustomerIn
    lines: list[int]
    record: str


class CustomerImport:
    """Streams a customer file and resolves customers in chunks; repeated customers are folded."""

    report: ImportReport
    summary: ImportSummary

    def __init__(
        self,
        csv_file: CsvFile,
        builder: CustomerRows,
        *,
        store_id: int,
        engine: Engine | None,
        chunk_size: int = CHUNK_SIZE,
        progress: Progress | None = None,
    ) -> None:
        self.csv_file = csv_file
        self.builder = builder
        self.store_id = store_id
        self.engine = engine
        self.chunk_size = chunk_size
        self.progress = progress
        self.pending: list[_PreparedCustomer] = []
        with session_scope(self.engine) as session:
            get_store(session, self.store_id)

    def run(self, report: ImportReport, summary: ImportSummary) -> None:
        """Import every customer of the file."""
        self.report, self.summary = report, summary
        repeated, _ = scan_keys(
            self.csv_file.path, key_index=self.builder.key_index,
            header_line=self.csv_file.header_line, normalise=self.builder.key,
            encoding=self.csv_file.encoding, delimiter=self.csv_file.delimiter,
            progress=self.progress,
        )  # fmt: skip
        deferred: dict[str, _PreparedCustomer] = {}
        for line, cells in self.csv_file.rows():
            warnings: list[Problem] = []
            key = self.builder.key(cells[self.builder.key_index])
            record = key or f"line {line}"
            try:
                customer = self.builder.build(line, cells, warnings)
            except RecordRejected as rejected:
                self.summary.records_read += 1
                self.summary.rejected_records += 1
                self.report.reject_record(rejected.problems, [line], record)
                continue
            for warning in warnings:
                self.report.ignore(warning, record)
            if key in repeated:
                held = deferred.get(key)
                if held is None:
                    deferred[key] = _PreparedCustomer(customer, [line], record)
                else:
                    held.customer = fold_customers(held.customer, customer)
                    held.lines.append(line)
                continue
            self.summary.records_read += 1
            self.pending.append(_PreparedCustomer(customer, [line], record))
            if len(self.pending) >= self.chunk_size:
                self._flush()
        if self.csv_file.broken is not None:
            self.report.reject(self.csv_file.broken)
        for prepared in deferred.values():
            self.summary.records_read += 1
            self.pending.append(prepared)
            if len(self.pending) >= self.chunk_size:
                self._flush()
        self._flush()
        self.summary.rows_read = self.csv_file.rows_read

    def _flush(self) -> None:
        batch, self.pending = self.pending, []
        if batch:
            self._write(batch)

    def _write(self, batch: list[_PreparedCustomer]) -> None:
        """Resolve a chunk in one transaction; if the database refuses it, halve it and retry."""
        try:
            with session_scope(self.engine) as session:
                prepare_bulk_load(session)
                results = resolve_customers(
                    session, self.store_id, [prepared.customer for prepared in batch]
                )
        except Exception as error:
            if not is_record_error(error):
                raise
            if len(batch) == 1:
                prepared = batch[0]
                problem = Problem(prepared.lines[0], "", "", database_reason(error))
                self.summary.rejected_records += 1
                self.report.reject_record([problem], prepared.lines, prepared.record)
                return
            middle = len(batch) // 2
            self._write(batch[:middle])
            self._write(batch[middle:])
            return
        for result in results:
            if result.created:
                self.summary.created += 1
            elif result.updated:
                self.summary.updated += 1
            else:
                self.summary.unchanged += 1


def fold_customers(earlier: CustomerIn, later: CustomerIn) -> CustomerIn:
    """One description from two of the same customer: later non-blank values win, lists merge."""
    folded = CustomerIn(source=later.source)
    for name in ("email", "phone", "first_name", "last_name", "country", "language", "timezone",
                 "currency", "birthday"):  # fmt: skip
        value = getattr(later, name)
        setattr(folded, name, value if value not in (None, "") else getattr(earlier, name))
    if earlier.tags or later.tags:
        folded.tags = list(dict.fromkeys([*(earlier.tags or []), *(later.tags or [])]))
    if earlier.attributes or later.attributes:
        folded.attributes = {**(earlier.attributes or {}), **(later.attributes or {})}
    folded.identities = list(dict.fromkeys([*earlier.identities, *later.identities]))
    consents = dict(earlier.consents)
    for channel, consent in later.consents.items():
        held = consents.get(channel)
        if held is None or consent.recorded_at >= held.recorded_at:
            consents[channel] = consent
    folded.consents = consents
    seen = [moment for moment in (earlier.seen_at, later.seen_at) if moment is not None]
    folded.seen_at = min(seen) if seen else None
    return folded


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Let the cyclic garbage collector run less often while a large import allocates.

    An import creates millions of small, short-lived containers (cells, rows, orders); with the
    default thresholds the collector also re-scans every long-lived object of the process (the
    modules, SQLAlchemy's metadata, …) over and over, which cost a sixth of an import's time.
    The objects that exist before the import are frozen (never scanned) and the first threshold
    raised; cycles are still collected, and both settings are restored afterwards.
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(thresholds[0], _IMPORT_GC_THRESHOLD), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


class Importer(Protocol):
    """An engine ready to run over an open file."""

    def run(self, report: ImportReport, summary: ImportSummary) -> None:
        """Import the file, writing problems to `report` and counts to `summary`."""


def run_import(
    kind: str,
    path: Path,
    *,
    report_path: Path | None,
    open_file: Callable[[], CsvFile],
    prepare: Callable[[CsvFile], Importer],
) -> ImportSummary:
    """Open the file, check it (`prepare` raises UnreadableFileError), then run it with a report.

    The shared frame of every importer; the report is only written once the file is known to be
    importable.
    """
    report_file = report_path or default_report_path(path)
    if report_file.resolve() == path.resolve():
        raise UnreadableFileError(f"the report would overwrite the file itself: {report_file}")
    summary = ImportSummary(kind=kind, path=str(path), report_path=str(report_file))
    started = time.perf_counter()
    with open_file() as csv_file:
        importer = prepare(csv_file)
        with ImportReport(report_file) as report, fewer_collections():
            importer.run(report, summary)
            summary.rejected_rows = len(report.rejected_lines)
            summary.warnings = report.warnings
    summary.seconds = time.perf_counter() - started
    return summary


# --- Customer rows -------------------------------------------------------------------------------


@dataclass
class CustomerColumns:
    """Where each customer field sits in a row (positions into the padded cells)."""

    labels: list[str]  # header labels by position, plus "" for the blank column
    email: int
    phones: list[int]  # the first that holds a readable number wins
    first_name: int
    last_name: int
    country: int
    tags: int
    identity_kind: str | None = None  # e.g. "shopify": the id column is an identity of this kind
    identity: int | None = None
    identity_prefix: str = ""  # e.g. "erp:" so that ids of different systems never collide
    identity_digits_only: bool = False
    language: int | None = None
    timezone: int | None = None
    currency: int | None = None
    birthday: int | None = None
    consents: dict[str, int] = field(default_factory=dict)  # channel -> yes/no column
    consent_recorded_at: int | None = None
    attributes: list[tuple[str, int]] = field(default_factory=list)  # (attribute key, column)


class CustomerRowBuilder:
    """Builds a CustomerIn from one row described by CustomerColumns."""

    def __init__(
        self,
        columns: CustomerColumns,
        *,
        source: str,
        consent_source: str,
        as_of: datetime,
        timestamps: TimestampParser | None = None,
    ) -> None:
        self.columns = columns
        self.source = source
        self.consent_source = consent_source
        self.as_of = as_of
        self.timestamps = timestamps or TimestampParser()
        self.phones = PhoneParser()
        if columns.identity is not None:
            self.key_index, self._key_is_identity = columns.identity, True
        else:
            self.key_index, self._key_is_identity = columns.email, False

    def key(self, text: str) -> str:
        """The duplicate-detection key: the platform id, else the lower-cased email."""
        if self._key_is_identity:
            return strip_apostrophe(text)
        return text.strip().lower()

    def build(self, line: int, cells: list[str], warnings: list[Problem]) -> CustomerIn:
        """The customer of this row, or RecordRejected naming every bad cell."""
        columns, labels = self.columns, self.columns.labels
        problems: list[Problem] = []

        def attempt(parse: Callable[[], Any]) -> Any:
            try:
                return parse()
            except CellProblem as problem:
                problems.append(Problem(line, problem.column, problem.value, problem.reason))
                return None

        identities: list[tuple[str, str]] = []
        if columns.identity is not None and columns.identity_kind:
            identity = strip_apostrophe(cells[columns.identity])
            label = labels[columns.identity]
            if identity and columns.identity_digits_only and not identity.isdigit():
                problems.append(Problem(line, label, identity, f"not a customer id: {identity!r}"))
            elif identity:
                value = attempt(lambda: limit(columns.identity_prefix + identity, 320, label))
                if value:
                    identities.append((columns.identity_kind, value))
        email = attempt(lambda: email_cell(cells[columns.email], labels[columns.email]))
        country_text = cells[columns.country].strip()
        country = country_code(country_text)
        if country_text and country is None:
            warnings.append(Problem(line, labels[columns.country], country_text,
                                    "not a two-letter country code; left out"))  # fmt: skip
        phone = self._phone(line, cells, country, warnings)
        first_name = attempt(lambda: self._name(cells, columns.first_name))
        last_name = attempt(lambda: self._name(cells, columns.last_name))
        customer = CustomerIn(
            source=self.source, email=email, phone=phone, first_name=first_name,
            last_name=last_name, country=country, identities=identities,
        )  # fmt: skip
        self._optional_fields(line, customer, cells, warnings)
        tags = split_list(cells[columns.tags])
        if tags:
            customer.tags = tags
        attributes = {key: cells[position].strip() for key, position in columns.attributes
                      if cells[position].strip()}  # fmt: skip
        if attributes:
            customer.attributes = attributes
        customer.consents = self._consents(line, cells, attempt, warnings)
        if problems:
            raise RecordRejected(problems)
        if not customer.identity_keys():
            raise RecordRejected([Problem(line, labels[columns.email], "",
                                          "no customer id, email or phone to recognise the "
                                          "customer by")])  # fmt: skip
        return customer

    def _name(self, cells: list[str], position: int) -> str | None:
        return limit(cells[position].strip(), 200, self.columns.labels[position]) or None

    def _phone(
        self, line: int, cells: list[str], region: str | None, warnings: list[Problem]
    ) -> str | None:
        for position in self.columns.phones:
            text = cells[position]
            if not text.strip():
                continue
            try:
                return self.phones.parse(text, region, self.columns.labels[position])
            except CellProblem as problem:
                warnings.append(Problem(line, problem.column, problem.value,
                                        f"{problem.reason}; the phone was left out"))  # fmt: skip
        return None

    def _optional_fields(
        self, line: int, customer: CustomerIn, cells: list[str], warnings: list[Problem]
    ) -> None:
        """Profile details that do not identify the customer: an unreadable one is left out."""
        columns, labels = self.columns, self.columns.labels

        def soft(position: int | None, parse: Callable[[str, str], Any]) -> Any:
            if position is None:
                return None
            try:
                return parse(cells[position], labels[position])
            except CellProblem as problem:
                warnings.append(Problem(line, problem.column, problem.value,
                                        f"{problem.reason}; left out"))  # fmt: skip
                return None

        customer.language = soft(
            columns.language, lambda text, column: limit(text.strip(), 16, column) or None
        )
        customer.timezone = soft(columns.timezone, _timezone_cell)
        customer.currency = soft(columns.currency, currency_cell)
        customer.birthday = soft(columns.birthday, self.timestamps.parse_date)

    def _consents(
        self, line: int, cells: list[str], attempt: Callable[[Callable[[], Any]], Any],
        warnings: list[Problem],
    ) -> dict[str, ConsentIn]:  # fmt: skip
        columns, labels = self.columns, self.columns.labels
        if not columns.consents:
            return {}
        recorded_at = self.as_of
        if columns.consent_recorded_at is not None:
            position = columns.consent_recorded_at
            stated = attempt(lambda: self.timestamps.parse(cells[position], labels[position]))
            recorded_at = stated or self.as_of
        consents: dict[str, ConsentIn] = {}
        for channel, position in columns.consents.items():
            try:
                accepts = parse_yes_no(cells[position], labels[position])
            except CellProblem as problem:
                reason = f"{problem.reason}; no {channel} consent recorded"
                warnings.append(Problem(line, problem.column, problem.value, reason))
                continue
            consent = consent_of(accepts, self.consent_source, recorded_at)
            if consent is not None:
                consents[channel] = consent
        return consents


def _timezone_cell(text: str, column: str) -> str | None:
    cleaned = text.strip()
    if not cleaned:
        return None
    try:
        return check_timezone(limit(cleaned, 64, column))
    except ValueError:
        raise CellProblem(column, text, f"not an IANA time zone: {text!r}") from None


def file_time(path: Path) -> datetime:
    """The file's modification time, UTC, to the second: the "as of" of an export."""
    try:
        return datetime.fromtimestamp(int(path.stat().st_mtime), tz=UTC)
    except OSError:
        return datetime(1970, 1, 1, tzinfo=UTC)
