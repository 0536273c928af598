"""`patronage worker` (the queue consumer) and `patronage jobs list|run`."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import typer

from patronage.cli.output import console, errors, fail, print_json
from patronage.errors import PatronageError

jobs_app = typer.Typer(help="The worker's scheduled jobs.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def worker(
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", "-w", min=1, help="Worker threads (default: PATRONAGE_WORKERS, 2)."
        ),
    ] = None,
    scheduler: Annotated[
        bool,
        typer.Option(
            "--scheduler/--no-scheduler",
            help="Also enqueue the scheduled jobs (run it on one worker process only).",
        ),
    ] = True,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "INFO",
) -> None:
    """Run the queue consumer until SIGTERM or SIGINT (both let running jobs finish)."""
    from patronage.db.engine import get_engine
    from patronage.db.migrate import upgrade
    from patronage.worker.consumer import create_consumer
    from patronage.worker.queue import check_queue, describe_queue
    from patronage.worker.tasks import get_worker

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        upgrade(get_engine())
        current = get_worker()
        check_queue(current.huey)
        threads = workers or current.settings.workers
        consumer = create_consumer(current, workers=threads, scheduler=scheduler)
    except PatronageError as error:
        fail(error.detail)
    logging.getLogger("patronage.worker").info(
        "consuming %s with %d threads%s",
        describe_queue(current.huey),
        threads,
        "" if scheduler else " (scheduler off)",
    )
    consumer.run()


@jobs_app.command("list")
def jobs_list(as_json: JsonOption = False) -> None:
    """Show the schedule: each job, when it runs, what it does."""
    from patronage.worker.jobs import JOBS
    from patronage.worker.queue import describe_queue
    from patronage.worker.schedule import schedule
    from patronage.worker.settings import load_settings

    try:
        settings = load_settings()
    except PatronageError as error:
        fail(error.detail)
    rows: list[dict[str, Any]] = [
        {
            "job": slot.job,
            "when": slot.describe(),
            "local_hour": slot.local_hour,
            "lock": JOBS[slot.job].lock,
            "what": JOBS[slot.job].description,
        }
        for slot in schedule(settings)
    ]
    rows.append(
        {
            "job": "rescore-customers",
            "when": "after new orders",
            "local_hour": None,
            "lock": "analytics",
            "what": "refresh the customers' aggregates; score the store from the kept ones "
            "(queued by worker.tasks.enqueue_rescore)",
        }
    )
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table("job", "when", "lock", "what")
    for row in rows:
        table.add_row(row["job"], row["when"], row["lock"], row["what"])
    console.print(table)
    try:
        from patronage.worker.tasks import get_worker

        where = describe_queue(get_worker().huey)
    except PatronageError as error:
        where = f"not usable: {error.detail}"
    console.print(f"queue: {where}", soft_wrap=True)


@jobs_app.command("run")
def jobs_run(
    name: Annotated[str, typer.Argument(help="Job name (see `patronage jobs list`).")],
    store: Annotated[
        int | None, typer.Option("--store", help="Store id (default: every store).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run one job now, here, for one store or every store, and print what it did."""
    from patronage.db.session import session_scope
    from patronage.stores.repository import list_stores
    from patronage.worker.jobs import get_job, run_job
    from patronage.worker.queue import check_queue
    from patronage.worker.tasks import get_worker

    try:
        get_job(name)
        current = get_worker()
        check_queue(current.huey)
        if store is None:
            with session_scope() as session:
                store_ids = [found.id for found in list_stores(session)]
        else:
            store_ids = [store]
    except PatronageError as error:
        fail(error.detail)
    results: list[dict[str, Any]] = []
    failed = 0
    for store_id in store_ids:
        try:
            result = run_job(
                name,
                store_id,
                huey=current.huey,
                lock_ttl_seconds=current.settings.lock_ttl_seconds,
            )
        except PatronageError as error:
            failed += 1
            results.append({"job": name, "store_id": store_id, "error": error.detail})
            if not as_json:
                errors.print(
                    f"[bold red]error:[/] {name} store {store_id}: {error.detail}", soft_wrap=True
                )
            continue
        results.append(result.as_dict())
        if not as_json:
            console.print(result.text(), soft_wrap=True)
    if as_json:
        print_json(results)
    elif not store_ids:
        console.print("no stores")
    raise typer.Exit(1 if failed else 0)
