"""`patronage loyalty …`: the membership program, members, the ledger's proof and the jobs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from patronage.cli.output import console, fail, print_json
from patronage.db.session import session_scope
from patronage.errors import PatronageError

app = typer.Typer(
    help="Membership: program, members, points ledger and its jobs.", no_args_is_help=True
)
program_app = typer.Typer(help="The store's membership program (YAML).", no_args_is_help=True)
app.add_typer(program_app, name="program")

StoreOption = Annotated[int, typer.Option("--store", help="Store id.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


@program_app.command("show")
def program_show(
    store: StoreOption,
    version: Annotated[int | None, typer.Option(help="A past version (default: in force).")] = None,
) -> None:
    """Print the program in force as YAML (the default program when the store has none)."""
    from patronage.loyalty import repository
    from patronage.loyalty.program import (
        current_program,
        default_program,
        program_from_document,
        program_to_yaml,
    )

    with session_scope() as session:
        if version is not None:
            document = repository.program_document(session, store, version)
            if document is None:
                fail(f"store {store} has no program version {version}")
            sys.stdout.write(f"# store {store}, program version {version}\n")
            sys.stdout.write(program_to_yaml(program_from_document(document)))
            return
        found = current_program(session, store)
    if found is None:
        sys.stdout.write(
            f"# store {store} has no program yet; this is the default "
            f"(`patronage loyalty program set --store {store}` installs it)\n"
        )
        sys.stdout.write(program_to_yaml(default_program()))
        return
    sys.stdout.write(f"# store {store}, program version {found[0]}\n")
    sys.stdout.write(program_to_yaml(found[1]))


@program_app.command("set")
def program_set(
    store: StoreOption,
    file: Annotated[
        Path | None, typer.Argument(help="Program YAML; omit for the default program.")
    ] = None,
) -> None:
    """Install a program (a YAML file, or the default) as the store's next version."""
    from patronage.loyalty.program import default_program, program_from_yaml, set_program
    from patronage.stores.service import get_store

    try:
        program = program_from_yaml(file.read_text()) if file else default_program()
    except OSError as error:
        fail(f"cannot read {file}: {error}")
    except PatronageError as error:
        fail(error.detail)
    try:
        with session_scope() as session:
            get_store(session, store)
            version = set_program(session, store, program, source="cli")
    except PatronageError as error:
        fail(error.detail)
    console.print(f"store {store}: program version [bold]{version}[/] in force")


@app.command("member")
def member(
    customer_id: Annotated[int, typer.Argument(help="Customer id.")],
    store: StoreOption,
    as_json: JsonOption = False,
) -> None:
    """Show a member's points, tier, progress and latest ledger entries."""
    from patronage.loyalty.service import member_ledger, member_summary

    try:
        with session_scope() as session:
            summary = member_summary(session, store_id=store, customer_id=customer_id)
            ledger = member_ledger(session, store_id=store, customer_id=customer_id, limit=10)
    except PatronageError as error:
        fail(error.detail)
    if as_json:
        print_json({**summary.model_dump(mode="json"), "ledger": ledger.model_dump(mode="json")})
        return
    console.print(
        f"[bold]customer {customer_id}[/] {summary.tier.name}"
        f"{' · heritage member' if summary.heritage else ''}"
    )
    console.print(
        f"available {summary.available:,} · pending {summary.pending:,}"
        + (f" · debt {summary.debt:,}" if summary.debt else "")
    )
    for lapse in summary.expiring_soon:
        console.print(f"  {lapse.points:,} points lapse on {lapse.expires_at:%Y-%m-%d}")
    console.print(summary.progress.text)
    console.print(summary.standing.text)
    for entry in ledger.entries:
        console.print(
            f"  {entry.occurred_at:%Y-%m-%d %H:%M} {entry.kind:<13} "
            f"{entry.available_delta:+8,} available {entry.pending_delta:+8,} pending  "
            f"{entry.reason or ''}"
        )


@app.command("verify")
def verify(store: StoreOption, as_json: JsonOption = False) -> None:
    """Prove the ledger: balances = sums of entries, lots = credits - consumptions, no lot
    over-consumed, no negative balance unless the policy allows it. Exit 0 only when all hold."""
    from patronage.loyalty.ledger import verify as verify_ledger

    with session_scope() as session:
        report = verify_ledger(session, store)
    if as_json:
        print_json(report.as_dict())
    else:
        console.print(
            f"store {store}: {report.members:,} members, {report.entries:,} entries, "
            f"{report.lots:,} lots"
        )
        for check in report.checks:
            mark = "[green]ok[/]" if check.holds else "[bold red]FAILED[/]"
            examples = f" e.g. {check.examples}" if check.examples else ""
            console.print(
                f"  {mark}  {check.name}"
                + ("" if check.holds else f": {check.violations:,} violations{examples}")
            )
    raise typer.Exit(0 if report.ok else 1)


@app.command("sync")
def sync(store: StoreOption) -> None:
    """Bring the points of every order of the store up to date (idempotent)."""
    from patronage.loyalty import repository
    from patronage.loyalty.orders import sync_order_points
    from patronage.stores.service import get_store

    chunk = 2000
    totals = {"orders": 0, "earned": 0, "reversed": 0, "activated": 0, "expired": 0}
    try:
        with session_scope() as session:
            order_ids = repository.order_ids_needing_points(session, store)
        for start in range(0, len(order_ids), chunk):
            with session_scope() as session:
                summary = sync_order_points(
                    session, get_store(session, store), order_ids[start : start + chunk]
                )
            for name in totals:
                totals[name] += getattr(summary, name)
    except PatronageError as error:
        fail(error.detail)
    console.print(
        f"store {store}: {totals['orders']:,} orders; {totals['earned']:,} points earned, "
        f"{totals['reversed']:,} reversed, {totals['activated']:,} activated, "
        f"{totals['expired']:,} expired"
    )


@app.command("activate")
def activate(store: StoreOption) -> None:
    """Activate points whose return window has passed; reward due referrals."""
    from patronage.kit.clock import utcnow
    from patronage.loyalty.orders import activate_due

    with session_scope() as session:
        summary = activate_due(session, store, utcnow())
    console.print(
        f"store {store}: {summary.activated:,} points activated for {summary.members:,} "
        f"members; {summary.referrals_rewarded:,} referrals rewarded"
    )


@app.command("expire")
def expire(store: StoreOption) -> None:
    """Expire lapsed points and queue the reminders of points about to lapse."""
    from patronage.kit.clock import utcnow
    from patronage.loyalty.orders import expire_due

    with session_scope() as session:
        summary = expire_due(session, store, utcnow())
    console.print(
        f"store {store}: {summary.expired:,} points expired for {summary.members:,} members; "
        f"{summary.reminders:,} reminders queued"
    )


@app.command("evaluate-tiers")
def evaluate_tiers(store: StoreOption) -> None:
    """Refresh every member's tier: upgrades at once, downgrades at the review after grace."""
    from patronage.kit.clock import utcnow
    from patronage.loyalty.tiers import evaluate_tiers as evaluate

    try:
        with session_scope() as session:
            changes = evaluate(session, store, utcnow())
    except PatronageError as error:
        fail(error.detail)
    console.print(
        f"store {store}: {changes.members:,} members; {len(changes.upgraded):,} upgraded, "
        f"{len(changes.downgraded):,} downgraded, {len(changes.warned):,} warned, "
        f"{len(changes.heritage):,} new heritage members"
    )
