"""The `patronage` command: one sub-command group per domain."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import typer

from patronage.cli.output import console, fail, print_json
from patronage.db.engine import get_engine
from patronage.db.migrate import current_revision, head_revision, upgrade
from patronage.db.session import session_scope
from patronage.errors import PatronageError

app = typer.Typer(
    help="Patronage: service marketing and loyalty for cross-border e-commerce stores.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
stores_app = typer.Typer(help="Stores (tenants) and their keys.", no_args_is_help=True)
fx_app = typer.Typer(help="Exchange rates to the store's base currency.", no_args_is_help=True)
customers_app = typer.Typer(help="Customers.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(customers_app, name="customers")
app.add_typer(stores_app, name="stores")
app.add_typer(fx_app, name="fx")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
StoreOption = Annotated[int, typer.Option("--store", help="Store id.")]


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "heads") -> None:
    """Create or migrate the schema of PATRONAGE_DATABASE_URL."""
    engine = get_engine()
    upgrade(engine, revision)
    console.print(
        f"schema at revision [bold]{current_revision(engine)}[/] ({engine.url.render_as_string()})"
    )


@db_app.command("status")
def db_status() -> None:
    """Show the schema revision of the database and of the code."""
    engine = get_engine()
    console.print(f"database: {current_revision(engine)}  code: {head_revision()}")


@stores_app.command("create")
def stores_create(
    name: Annotated[str, typer.Argument(help="Store name.")],
    currency: Annotated[str, typer.Option(help="Base currency (ISO 4217).")] = "USD",
    timezone: Annotated[str, typer.Option(help="IANA time zone.")] = "UTC",
    language: Annotated[str, typer.Option(help="Default language.")] = "en",
    market: Annotated[
        list[str] | None, typer.Option(help="A market (country code); repeat.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a store and print its id, secret API key, publishable write key and webhook secret."""
    from patronage.stores.service import create_store

    upgrade(get_engine())
    try:
        with session_scope() as session:
            created = create_store(
                session,
                name=name,
                base_currency=currency,
                timezone=timezone,
                default_language=language,
                markets=market or [],
            )
            result = {
                "id": created.store.id,
                "name": created.store.name,
                "base_currency": created.store.base_currency,
                "timezone": created.store.timezone,
                "markets": created.store.markets,
                "secret_key": created.secret_key,
                "publishable_key": created.publishable_key,
                "webhook_secret": created.webhook_secret,
            }
    except PatronageError as error:
        fail(error.detail)
    if as_json:
        print_json(result)
        return
    console.print(
        f"[bold green]store {result['id']}[/] {result['name']} ({result['base_currency']})"
    )
    console.print(f"secret key:      {result['secret_key']}   (admin API; shown once)")
    console.print(f"publishable key: {result['publishable_key']}   (tracking write key)")
    console.print(f"webhook secret:  {result['webhook_secret']}")


@stores_app.command("list")
def stores_list(as_json: JsonOption = False) -> None:
    """List the stores."""
    from rich.table import Table

    from patronage.stores.repository import list_stores

    with session_scope() as session:
        rows: list[dict[str, Any]] = [
            {
                "id": s.id,
                "name": s.name,
                "base_currency": s.base_currency,
                "timezone": s.timezone,
                "markets": s.markets,
            }
            for s in list_stores(session)
        ]
    if as_json:
        print_json(rows)
        return
    table = Table("id", "name", "currency", "time zone", "markets")
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["name"],
            row["base_currency"],
            row["timezone"],
            ", ".join(row["markets"]),
        )
    console.print(table)


@stores_app.command("set-webhook-secret")
def stores_set_webhook_secret(store: StoreOption, secret: Annotated[str, typer.Argument()]) -> None:
    """Use your platform app's signing secret (e.g. Shopify's client secret) for webhooks."""
    from patronage.stores.service import get_store, set_webhook_secret

    try:
        with session_scope() as session:
            set_webhook_secret(session, get_store(session, store), secret)
    except PatronageError as error:
        fail(error.detail)
    console.print("webhook secret updated")


@fx_app.command("set")
def fx_set(
    store: StoreOption,
    currency: Annotated[str, typer.Argument(help="Currency, e.g. EUR.")],
    rate: Annotated[str, typer.Argument(help="Base-currency units per unit of CURRENCY.")],
    on: Annotated[
        str | None, typer.Option("--date", help="Date (YYYY-MM-DD); default today.")
    ] = None,
) -> None:
    """Record the exchange rate of CURRENCY on a date."""
    from patronage.orders.fx import set_rate

    try:
        value = Decimal(rate)
        rate_date = date.fromisoformat(on) if on else date.today()
    except (InvalidOperation, ValueError) as error:
        fail(f"bad rate or date: {error}")
    try:
        with session_scope() as session:
            set_rate(
                session, store, currency=currency, rate_date=rate_date, rate=value, source="cli"
            )
    except PatronageError as error:
        fail(error.detail)
    console.print(f"1 {currency.upper()} = {value} (store {store}) on {rate_date}")


@customers_app.command("show")
def customers_show(
    store: StoreOption,
    customer_id: Annotated[int | None, typer.Argument(help="Customer id.")] = None,
    email: Annotated[str | None, typer.Option(help="Find the customer by email.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Show a customer's 360 view: profile, identities, consent, orders, recent events."""
    from patronage.customers.profile import customer_360, find_customer_id_by_email

    if customer_id is None and not email:
        fail("give a customer id or --email")
    try:
        with session_scope() as session:
            wanted = customer_id or find_customer_id_by_email(session, store, email or "")
            view = customer_360(session, store, wanted)
    except PatronageError as error:
        fail(error.detail)
    if as_json:
        print_json(view.model_dump(mode="json"))
        return
    name = " ".join(part for part in (view.first_name, view.last_name) if part) or "(no name)"
    console.print(f"[bold]customer {view.id}[/] {name} <{view.email or '-'}> {view.phone or ''}")
    console.print(
        f"country {view.country or '-'}, language {view.language or '-'}, {view.order_count} orders"
    )
    for consent in view.consents:
        console.print(f"  consent {consent.channel}: {consent.status} ({consent.source})")
    for order in view.orders[:10]:
        console.print(
            f"  {order.placed_at:%Y-%m-%d} {order.name or order.external_id} "
            f"{order.total} {order.currency} [{order.status}]"
        )


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    access_log: Annotated[
        bool, typer.Option(help="Log every request (costs CPU on busy tracking intake).")
    ] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the HTTP API (migrating the schema first)."""
    import gc

    import uvicorn

    from patronage.api.app import create_app

    upgrade(get_engine())
    api = create_app()
    _rescore_after_orders()
    # The tracking intake allocates thousands of short-lived objects a request; by default the
    # collector then keeps re-scanning every object start-up built (a fifth of the intake's CPU).
    # Freeze those out of its way and collect the young generation less often.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    uvicorn.run(api, host=host, port=port, log_level=log_level, access_log=access_log)


def _rescore_after_orders() -> None:
    """Queue the rescoring of customers whose orders this process changes (docs/worker.md)."""
    from patronage.worker.after_orders import enable_rescore_after_orders

    try:
        enable_rescore_after_orders()
    except PatronageError as error:
        fail(error.detail)


def _register_groups() -> None:
    from patronage.cli import analyze, clv, demo, importing, loyalty, worker

    app.add_typer(importing.app, name="import")
    app.add_typer(clv.app, name="clv")
    app.add_typer(loyalty.app, name="loyalty")
    app.command("analyze")(analyze.analyze)
    app.add_typer(analyze.report_app, name="report")
    app.command("demo")(demo.demo)
    app.command("worker")(worker.worker)
    app.add_typer(worker.jobs_app, name="jobs")


_register_groups()
