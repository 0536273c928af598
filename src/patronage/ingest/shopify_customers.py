"""The Shopify customer CSV export, current and older layouts and the import template.

Consent columns say what the customer had agreed to when the file was exported, so each statement
is recorded as of the export: by default the file's modification time (to the second), which a
re-import of the same file repeats exactly, and which a newer real-time statement (a webhook)
outranks. Pass `as_of` when the file's time is not the export's.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine

from patronage.ingest.csv_common import (
    CHUNK_SIZE,
    CsvFile,
    CustomerColumns,
    CustomerImport,
    CustomerRowBuilder,
    HeaderMap,
    ImportSummary,
    Progress,
    UnreadableFileError,
    file_time,
    run_import,
)
from patronage.kit.times import as_utc

SOURCE = "shopify"
CONSENT_SOURCE = "shopify_csv"
IDENTITY_HEADERS = ("Customer ID", "Email", "Phone")


def shopify_customer_columns(header: HeaderMap) -> CustomerColumns:
    """Find the customer fields in a Shopify export header, whatever its age."""
    if not any(header.has(name) for name in IDENTITY_HEADERS):
        raise UnreadableFileError(
            "this does not look like a Shopify customer export: missing required column(s) "
            f"{' / '.join(IDENTITY_HEADERS)} (found: {', '.join(header.labels)[:300]})"
        )
    at = header.index
    consents = {"email": at("Accepts Email Marketing", "Accepts Marketing")}
    if header.has("Accepts SMS Marketing"):
        consents["sms"] = at("Accepts SMS Marketing")
    if header.has("Accepts WhatsApp Marketing"):
        consents["whatsapp"] = at("Accepts WhatsApp Marketing")
    attributes = [("note", at("Note"))] if header.has("Note") else []
    attributes += [(key, position) for position, key in header.metafields()]
    has_id, blank = header.has("Customer ID"), header.blank
    return CustomerColumns(
        labels=[*header.labels, ""],
        email=at("Email"),
        # Current layouts have the customer's Phone and the address phone; older ones only Phone.
        phones=[at("Phone"), at("Default Address Phone")],
        first_name=at("First Name"),
        last_name=at("Last Name"),
        country=at("Default Address Country Code", "Country Code"),
        tags=at("Tags"),
        identity_kind="shopify" if has_id else None,
        identity=at("Customer ID") if has_id else None,
        identity_digits_only=True,
        consents={channel: position for channel, position in consents.items() if position != blank},
        attributes=attributes,
    )


def import_shopify_customers(
    path: str | Path,
    *,
    store_id: int,
    engine: Engine | None = None,
    report_path: str | Path | None = None,
    as_of: datetime | None = None,
    chunk_size: int = CHUNK_SIZE,
    progress: Progress | None = None,
    encoding: str = "utf-8-sig",
) -> ImportSummary:
    """Import a Shopify customer CSV export into the store; see docs/importing.md."""
    source = Path(path)
    consent_time = as_utc(as_of) if as_of is not None else file_time(source)

    def prepare(csv_file: CsvFile) -> CustomerImport:
        builder = CustomerRowBuilder(
            shopify_customer_columns(csv_file.header), source=SOURCE,
            consent_source=CONSENT_SOURCE, as_of=consent_time,
        )  # fmt: skip
        return CustomerImport(csv_file, builder, store_id=store_id, engine=engine,
                              chunk_size=chunk_size, progress=progress)  # fmt: skip

    summary = run_import(
        "shopify-customers", source,
        report_path=Path(report_path) if report_path else None,
        open_file=lambda: CsvFile(source, encoding=encoding, progress=progress),
        prepare=prepare,
    )  # fmt: skip
    summary.notes.append(f"consent recorded as of {consent_time.isoformat()}")
    return summary
