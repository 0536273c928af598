"""`patronage demo`: build the deterministic demo store and serve it."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import typer

from patronage.cli.output import console, errors, fail, print_json
from patronage.demo.generator import (
    DEFAULT_AS_OF,
    DEFAULT_CUSTOMERS,
    DEFAULT_SEED,
    MAX_CUSTOMERS,
)

if TYPE_CHECKING:
    from patronage.demo.generator import DemoSummary


def demo(
    customers: Annotated[
        int,
        typer.Option("--customers", min=1, max=MAX_CUSTOMERS, help="How many customers to create."),
    ] = DEFAULT_CUSTOMERS,
    seed: Annotated[
        int, typer.Option("--seed", min=0, help="Random seed: the same seed gives the same store.")
    ] = DEFAULT_SEED,
    as_of: Annotated[
        str,
        typer.Option(
            "--as-of", help="The simulated today (YYYY-MM-DD); history covers 1,000 days before it."
        ),
    ] = DEFAULT_AS_OF.isoformat(),
    replace: Annotated[
        bool,
        typer.Option(
            "--replace", help="First delete the demo stores built earlier in this database."
        ),
    ] = False,
    serve: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve the HTTP API after building.")
    ] = True,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Build a realistic cross-border demo store (12 markets, years of orders) and serve it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from patronage.db.engine import get_engine
    from patronage.db.migrate import upgrade
    from patronage.demo.generator import build_demo_store, remove_demo_stores
    from patronage.errors import PatronageError

    try:
        as_of_date = date.fromisoformat(as_of)
    except ValueError:
        fail(f"--as-of must be a date like 2026-11-01, not {as_of!r}")
    engine = get_engine()
    upgrade(engine)
    if replace:
        removed = remove_demo_stores(engine)
        if removed and not as_json:
            errors.print(f"removed demo store(s) {', '.join(map(str, removed))}")
    progress = Progress(
        TextColumn("[bold]building the demo store"), BarColumn(), MofNCompleteColumn(),
        TextColumn("customers"), TimeElapsedColumn(), console=errors, transient=True,
        disable=as_json and not errors.is_terminal,
    )  # fmt: skip
    task = progress.add_task("customers", total=customers)

    def advance(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    try:
        with progress:
            summary = build_demo_store(
                engine, customers=customers, seed=seed, as_of=as_of_date, on_progress=advance
            )
    except PatronageError as error:
        fail(error.detail)
    if as_json:
        print_json(summary.as_dict())
    else:
        _print_summary(summary, host, port)
    if serve:
        import uvicorn

        from patronage.api.app import create_app
        from patronage.worker.after_orders import enable_rescore_after_orders

        enable_rescore_after_orders()
        uvicorn.run(create_app(engine), host=host, port=port, log_level="info")


def _print_membership(membership: dict[str, Any], store_id: int) -> None:
    """One line each: members by tier, points states, notices, coupons and referrals."""
    if not membership:
        return

    def listing(counts: dict[str, int]) -> str:
        return ", ".join(f"{name.replace('_', ' ')} {count:,}" for name, count in counts.items())

    console.print(
        f"[bold]membership[/] {membership['members']:,} members — "
        f"{listing(membership['tiers'])}; heritage {membership['heritage']:,}"
    )
    console.print(
        f"  points: {membership['with_pending_points']:,} members with pending points, "
        f"{membership['with_available_points']:,} with available points, "
        f"{membership['in_debt']:,} in debt (refunds after spending)"
    )
    console.print(f"  pending notices: {listing(membership['pending_notices'])}")
    console.print(f"  coupons: {listing(membership['coupons'])}")
    console.print(f"  referrals: {listing(membership['referrals'])}")
    check = f"patronage loyalty verify --store {store_id}"
    console.print(f"  every balance checks: {check}", highlight=False)


def _print_summary(summary: DemoSummary, host: str, port: int) -> None:
    """The store, its markets, its keys and a few requests to try."""
    from rich.table import Table

    counts = summary.counts
    console.print(
        f"[bold green]demo store {summary.store_id}[/] {summary.name} — base "
        f"{summary.base_currency}, {summary.timezone}, seed {summary.seed}, "
        f"as of {summary.as_of.isoformat()}"
    )
    console.print(
        f"{counts['customers']:,} customers · {counts['orders']:,} orders · "
        f"{counts['order_lines']:,} order lines · {counts['refunds']:,} refunds · "
        f"{counts['events']:,} events · {counts['products']:,} products "
        f"(built in {summary.build_seconds:.1f} s)"
    )
    table = Table("market", "currency", "language", "time zone", "customers", "orders",
                  f"revenue ({summary.base_currency})", "refunded")  # fmt: skip
    for market in summary.markets:
        table.add_row(
            f"{market.code} {market.name}", market.currency, market.language, market.timezone,
            f"{market.customers:,}", f"{market.orders:,}", f"{market.revenue_base:,.2f}",
            f"{market.refunded_base:,.2f}",
        )  # fmt: skip
    console.print(table)
    _print_membership(summary.membership, summary.store_id)
    console.print(f"secret key:      {summary.secret_key}   (admin API; shown once)")
    console.print(f"publishable key: {summary.publishable_key}   (tracking write key)")
    console.print(f"webhook secret:  {summary.webhook_secret}")
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    auth = f'-H "Authorization: Bearer {summary.secret_key}"'
    console.print("\ntry:", highlight=False)
    console.print(f"  curl {base}/health", highlight=False, soft_wrap=True)
    if summary.example_customer_id is not None:
        console.print(
            f"  curl {auth} {base}/v1/customers/{summary.example_customer_id}",
            highlight=False, soft_wrap=True,
        )  # fmt: skip
    if summary.example_customer_email:
        email = quote(summary.example_customer_email, safe="@")
        console.print(
            f'  curl {auth} "{base}/v1/customers?email={email}"', highlight=False, soft_wrap=True
        )
    console.print(f"  open {base}/docs", highlight=False)
