"""`patronage analyze` (store KPIs, rescoring) and `patronage report customers` (HTML report)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from patronage.cli.output import console, fail, print_json
from patronage.db.session import session_scope
from patronage.errors import PatronageError

report_app = typer.Typer(help="Reports.", no_args_is_help=True)

StoreOption = Annotated[int, typer.Option("--store", help="Store id.")]
FromOption = Annotated[
    str | None, typer.Option("--from", help="First day, YYYY-MM-DD (default: a year ago).")
]
ToOption = Annotated[
    str | None, typer.Option("--to", help="Last day, YYYY-MM-DD (default: today).")
]
MarketOption = Annotated[str | None, typer.Option("--market", help="Only this market (country).")]


def _dates(start: str | None, end: str | None) -> tuple[date | None, date | None]:
    try:
        return (
            date.fromisoformat(start) if start else None,
            date.fromisoformat(end) if end else None,
        )
    except ValueError as error:
        fail(f"bad date: {error}")


def analyze(
    store: StoreOption,
    start: FromOption = None,
    end: ToOption = None,
    market: MarketOption = None,
    rescore: Annotated[
        bool, typer.Option("--rescore", help="Recompute every customer's aggregates and scores.")
    ] = False,
    engine: Annotated[
        str, typer.Option(help="Where rescoring runs: database, duckdb or spark.")
    ] = "database",
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Score as of this day (default: now).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the store's KPIs for a period and market, or rescore every customer (--rescore)."""
    if rescore:
        _rescore(store, engine, as_of, as_json)
        return
    from patronage.analytics.engines import DatabaseEngine
    from patronage.analytics.kpis import KpiQuery, store_kpis
    from patronage.stores.service import get_store

    first, last = _dates(start, end)
    try:
        with session_scope() as session:
            currency = get_store(session, store).base_currency
            query = KpiQuery.for_dates(
                store, start=first, end=last, market=market, currency=currency
            )
            kpis = store_kpis(DatabaseEngine(session), query)
    except (PatronageError, ValueError) as error:
        fail(getattr(error, "detail", str(error)))
    if as_json:
        print_json(kpis)
        return
    _print_kpis(kpis)


def _rescore(store: int, engine: str, as_of: str | None, as_json: bool) -> None:
    from patronage.analytics.service import rescore_store

    moment = None
    if as_of:
        try:
            day = date.fromisoformat(as_of)
        except ValueError as error:
            fail(f"bad --as-of: {error}")
        moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
    try:
        with session_scope() as session:
            summary = rescore_store(session, store, engine=engine, as_of=moment)
    except (PatronageError, ValueError) as error:
        fail(getattr(error, "detail", str(error)))
    if as_json:
        print_json(summary.as_dict())
        return
    console.print(
        f"[bold]store {store}[/]: scored {summary.customers:,} customers on {summary.engine} "
        f"in {summary.seconds:.2f} s (as of {summary.as_of:%Y-%m-%d %H:%M} UTC)"
    )
    for name in ("lifecycle_stage", "rfm_segment"):
        parts = ", ".join(
            f"{key}: {value:,}" for key, value in sorted(summary.counts.get(name, {}).items())
        )
        console.print(f"  {name.replace('_', ' ')}: {parts}")


def _print_kpis(kpis: dict[str, Any]) -> None:
    from rich.table import Table

    period = kpis["period"]
    console.print(
        f"[bold]store {kpis['store_id']}[/] {period['from']} - {period['to']}"
        f"{' market ' + kpis['market'] if kpis['market'] else ''} ({kpis['currency']})"
    )
    revenue, customers, rates = kpis["revenue"], kpis["customers"], kpis["repurchase_rate"]
    console.print(
        f"  revenue net {revenue['net']} (gross {revenue['gross']}, refunds {revenue['refunds']}),"
        f" {kpis['orders']:,} orders, average order value {kpis['average_order_value']}"
    )
    console.print(
        f"  customers active {customers['active']:,}, new {customers['new']:,}, "
        f"returning {customers['returning']:,}; repurchase rate {_percent(rates['period'])} "
        f"in the period, {_percent(rates['lifetime'])} over the lifetime"
    )
    members = kpis["members"]
    console.print(
        f"  members ({members['definition']}): {members['count']:,}, active "
        f"{_percent(members['activity_rate'])}, returning customers' revenue share "
        f"{_percent(members['returning_revenue_share'])}"
    )
    table = Table("month", "orders", "net", "AOV", "active", "new", "repurchase")
    for row in kpis["by_month"]:
        table.add_row(
            row["month"],
            f"{row['orders']:,}",
            row["net"],
            row["average_order_value"],
            f"{row['active_customers']:,}",
            f"{row['new_customers']:,}",
            _percent(row["repurchase_rate"]),
        )
    console.print(table)
    markets = Table("market", "orders", "net", "customers", "repurchase")
    for row in kpis["by_market"]:
        markets.add_row(
            row["market"],
            f"{row['orders']:,}",
            row["net"],
            f"{row['customers']:,}",
            _percent(row["repurchase_rate"]),
        )
    console.print(markets)
    funnel = Table("step", "people", "sessions", "from previous")
    for step in kpis["funnel"]:
        funnel.add_row(
            step["step"],
            f"{step['people']:,}",
            f"{step['sessions']:,}",
            _percent(step["conversion_from_previous"]),
        )
    console.print(funnel)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


@report_app.command("customers")
def report_customers(
    store: StoreOption,
    html: Annotated[Path, typer.Option("--html", help="Write the report to this HTML file.")],
    start: FromOption = None,
    end: ToOption = None,
    market: MarketOption = None,
) -> None:
    """Write a standalone HTML report of the store's customer situation (opens offline)."""
    from patronage.analytics.report import write_customer_report

    first, last = _dates(start, end)
    try:
        with session_scope() as session:
            written = write_customer_report(
                session, store, html, start=first, end=last, market=market
            )
    except (PatronageError, ValueError) as error:
        fail(getattr(error, "detail", str(error)))
    console.print(f"wrote {written} ({written.stat().st_size / 1e6:.1f} MB)")
