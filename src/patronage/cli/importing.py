"""`patronage import …`: Shopify customer and order CSV exports, generic CSV."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.progress import Progress as RichProgressBar
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from patronage.cli.output import console, errors, fail, print_json
from patronage.errors import PatronageError
from patronage.ingest.csv_common import CHUNK_SIZE, ImportSummary, Progress

app = typer.Typer(help="Import customers and orders from files.", no_args_is_help=True)

PathArgument = Annotated[
    Path, typer.Argument(help="The CSV file.", dir_okay=False, show_default=False)
]
StoreOption = Annotated[int, typer.Option("--store", help="Store id.", show_default=False)]
ReportOption = Annotated[
    Path | None,
    typer.Option("--report", help="Where to write the report of problems "
                 "[default: <file>.report.csv next to the file].", dir_okay=False),
]  # fmt: skip
JsonOption = Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")]
ChunkOption = Annotated[int, typer.Option("--chunk-size", min=1, help="Records per transaction.")]
AsOfOption = Annotated[
    str | None,
    typer.Option("--as-of", help="When the export was taken (consent is recorded as of then) "
                 "[default: the file's modification time].", show_default=False),
]  # fmt: skip
MapOption = Annotated[
    Path | None,
    typer.Option("--map", help="Column map, JSON or YAML (see docs/importing.md).",
                 dir_okay=False, show_default=False),
]  # fmt: skip
DefaultOption = Annotated[
    list[str] | None,
    typer.Option("--default", help="field=value for a field the file lacks or leaves blank "
                 "(e.g. currency=EUR); repeat.", show_default=False),
]  # fmt: skip
ColumnOption = Annotated[
    list[str] | None,
    typer.Option("--column", help="field=Header, added to or replacing the map; repeat.",
                 show_default=False),
]  # fmt: skip


class RichProgress:
    """A Rich progress bar by bytes read, on standard error (standard output stays for --json)."""

    def __init__(self) -> None:
        self.bar = RichProgressBar(
            TextColumn("{task.description:>10}"), BarColumn(), DownloadColumn(),
            TransferSpeedColumn(), TimeRemainingColumn(), console=errors, transient=True,
            disable=not errors.is_terminal,
        )  # fmt: skip
        self.task: TaskID | None = None

    def __enter__(self) -> RichProgress:
        self.bar.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.bar.stop()

    def start(self, description: str, total_bytes: int) -> None:
        """Show a new pass over the file."""
        if self.task is None:
            self.task = self.bar.add_task(description, total=total_bytes)
        else:
            self.bar.reset(self.task, total=total_bytes, description=description)

    def advance_to(self, bytes_read: int) -> None:
        """Move the bar to this many bytes."""
        if self.task is not None:
            self.bar.update(self.task, completed=bytes_read)


def _run(work: Callable[[Progress], ImportSummary], as_json: bool) -> None:
    from patronage.worker.after_orders import rescoring_after_orders

    try:
        with rescoring_after_orders(), RichProgress() as progress:
            summary = work(progress)
    except PatronageError as error:
        fail(error.detail)
    except SQLAlchemyError as error:
        fail(f"database error: {str(error).splitlines()[0]}")
    if as_json:
        print_json(summary.as_dict())
        return
    _print_summary(summary)


def _print_summary(summary: ImportSummary) -> None:
    records = "orders" if "orders" in summary.kind else "customers"
    console.print(f"[bold]{summary.kind}[/] {summary.path}")
    table = Table(show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("rows read", f"{summary.rows_read:,}")
    table.add_row(f"{records} read", f"{summary.records_read:,}")
    table.add_row("created", f"[green]{summary.created:,}[/]")
    table.add_row("updated", f"{summary.updated:,}")
    table.add_row("unchanged", f"{summary.unchanged:,}")
    style = "red" if summary.rejected_records or summary.rejected_rows else "green"
    table.add_row(f"rejected {records}", f"[{style}]{summary.rejected_records:,}[/]")
    table.add_row("rejected rows", f"[{style}]{summary.rejected_rows:,}[/]")
    table.add_row("values ignored", f"{summary.warnings:,}")
    if records == "orders":
        table.add_row("new customers", f"{summary.customers_created:,}")
    table.add_row("seconds", f"{summary.seconds:,.2f}")
    table.add_row("rows per second", f"{summary.rows_per_second:,.0f}")
    console.print(table)
    for note in summary.notes:
        console.print(f"[dim]{note}[/]")
    if summary.rejected_rows or summary.warnings:
        console.print(f"problems by line and column: [bold]{summary.report_path}[/]")


def _as_of(text: str | None) -> datetime | None:
    from patronage.kit.times import parse_timestamp

    if text is None:
        return None
    try:
        return parse_timestamp(text)
    except ValueError:
        fail(f"--as-of is not a timestamp: {text!r}")


@app.command("shopify-customers")
def shopify_customers(
    path: PathArgument,
    store: StoreOption,
    report: ReportOption = None,
    as_of: AsOfOption = None,
    chunk_size: ChunkOption = CHUNK_SIZE,
    as_json: JsonOption = False,
) -> None:
    """Import a Shopify customer CSV export (any layout, or the import template)."""
    from patronage.ingest.shopify_customers import import_shopify_customers

    moment = _as_of(as_of)
    _run(lambda progress: import_shopify_customers(
        path, store_id=store, report_path=report, as_of=moment, chunk_size=chunk_size,
        progress=progress,
    ), as_json)  # fmt: skip


@app.command("shopify-orders")
def shopify_orders(
    path: PathArgument,
    store: StoreOption,
    report: ReportOption = None,
    chunk_size: ChunkOption = CHUNK_SIZE,
    as_json: JsonOption = False,
) -> None:
    """Import a Shopify order CSV export (one row per line item)."""
    from patronage.ingest.shopify_orders import import_shopify_orders

    _run(lambda progress: import_shopify_orders(
        path, store_id=store, report_path=report, chunk_size=chunk_size, progress=progress,
    ), as_json)  # fmt: skip


@app.command("orders-csv")
def orders_csv(
    path: PathArgument,
    store: StoreOption,
    column_map: MapOption = None,
    column: ColumnOption = None,
    default: DefaultOption = None,
    report: ReportOption = None,
    chunk_size: ChunkOption = CHUNK_SIZE,
    as_json: JsonOption = False,
) -> None:
    """Import orders from any CSV with a column map (one row per order or per line)."""
    from patronage.ingest.generic_csv import import_orders_csv, load_column_map

    try:
        mapping = load_column_map(column_map, kind="orders", overrides=column or [],
                                  defaults=default or [])  # fmt: skip
    except PatronageError as error:
        fail(error.detail)
    _run(lambda progress: import_orders_csv(
        path, store_id=store, column_map=mapping, report_path=report, chunk_size=chunk_size,
        progress=progress,
    ), as_json)  # fmt: skip


@app.command("customers-csv")
def customers_csv(
    path: PathArgument,
    store: StoreOption,
    column_map: MapOption = None,
    column: ColumnOption = None,
    report: ReportOption = None,
    as_of: AsOfOption = None,
    chunk_size: ChunkOption = CHUNK_SIZE,
    as_json: JsonOption = False,
) -> None:
    """Import customers from any CSV with a column map."""
    from patronage.ingest.generic_csv import import_customers_csv, load_column_map

    try:
        mapping = load_column_map(column_map, kind="customers", overrides=column or [])
    except PatronageError as error:
        fail(error.detail)
    moment = _as_of(as_of)
    _run(lambda progress: import_customers_csv(
        path, store_id=store, column_map=mapping, report_path=report, as_of=moment,
        chunk_size=chunk_size, progress=progress,
    ), as_json)  # fmt: skip
