"""Points ledger: mutations per second (service, API) and `verify` over many members.

    python -m benchmarks.bench_loyalty --case service|api|verify --backend sqlite|postgresql
        [--contention] [--n N] [--workers W] [--threads T] [--batch B]

prints one JSON object (the fields of `benchmarks.common.Result`).

- `service`: N ledger mutations (alternating earns and debits) through `loyalty.service`, each in
  its own committed transaction (or `--batch B` per transaction through `change_points_many`), by
  W worker processes of T threads, each thread with its own connection, like the request threads
  of a server (default 2 x 8 on PostgreSQL, 2 x 4 with contention; on SQLite, whose writers
  queue for one lock, 1 x 1, or 1 x 2 with contention). Commits are durable as the server is
  configured (its `synchronous_commit` is reported, never changed). Without `--contention`
  each thread has its own members, enrolled before the clock starts; with it every mutation hits
  the same member (its row lock serialises them). The note gives the client's CPU per mutation
  and, on PostgreSQL, the CPU of the database backends serving the threads.
- `api`: the same through `POST /v1/members/{id}/points` on a uvicorn server in another process,
  W client threads; the note gives the server process's CPU per mutation.
- `verify`: N members with three entries, two lots and one consumption each are bulk-loaded (not
  timed; COPY on PostgreSQL), then `verify` is timed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import Engine

from benchmarks.common import POSTGRES_ADMIN, Result, peak_rss_mb

SERVICE_TARGET = 2_000  # mutations/s through the service on PostgreSQL, no contention
VERIFY_TARGET_SECONDS = 60  # for 1,000,000 members
MEMBERS_PER_WORKER = 200  # per thread
DEFAULT_PROCESSES = 2  # service on PostgreSQL: like a server with two worker processes
# … of eight request threads each: a request waits some milliseconds for its commit's WAL flush,
# which a server overlaps with other requests (FastAPI runs plain endpoints in a pool of 40
# threads) and PostgreSQL's group commit flushes together. Contention on one member keeps four.
DEFAULT_THREADS = 8
DEFAULT_THREADS_CONTENTION = 4

os.environ.setdefault("PATRONAGE_SECRET_KEY", "benchmark-secret")


@contextmanager
def database(backend: str) -> Iterator[str]:
    """A fresh, migrated database of `backend`; yields its URL and removes it afterwards."""
    from patronage.db.engine import create_engine_for
    from patronage.db.migrate import upgrade

    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            url = f"sqlite:///{directory}/bench.db"
            engine = create_engine_for(url)
            upgrade(engine)
            engine.dispose()
            yield url
        return
    name = f"patronage_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    url = f"{base}/{name}"
    try:
        engine = create_engine_for(url)
        upgrade(engine)
        engine.dispose()
        yield url
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def prepare(url: str, members: int) -> tuple[int, str, list[int]]:
    """A store with the default program and `members` customers; (store id, secret key, ids)."""
    from patronage.customers.schemas import CustomerIn
    from patronage.customers.service import resolve_customers
    from patronage.db.engine import create_engine_for
    from patronage.db.session import session_scope
    from patronage.loyalty.program import default_program, set_program
    from patronage.stores.service import create_store

    engine = create_engine_for(url)
    with session_scope(engine) as session:
        created = create_store(session, name="Bench store", base_currency="USD")
        set_program(session, created.store.id, default_program(), source="bench")
        customers = resolve_customers(
            session,
            created.store.id,
            [CustomerIn(source="bench", email=f"m{i}@example.com") for i in range(members)],
        )
        result = created.store.id, created.secret_key, [c.customer_id for c in customers]
    engine.dispose()
    return result


# ---- service -----------------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) a process on this machine has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


ServiceJob = tuple[str, int, list[list[int]], int, str, int]


def synchronous_commit(url: str) -> str:
    """The PostgreSQL server's `synchronous_commit` as a new connection sees it."""
    from sqlalchemy import text

    from patronage.db.engine import create_engine_for

    engine = create_engine_for(url)
    with engine.connect() as connection:
        setting = str(connection.scalar(text("SHOW synchronous_commit")))
    engine.dispose()
    return setting


def _service_worker(job: ServiceJob) -> tuple[int, float, float, float]:
    """Run mutations in threads, one a member group, each thread with its own connection and a
    session per transaction (like a server's request threads); return (mutations, seconds, this
    process's CPU seconds, the PostgreSQL backends' CPU seconds)."""
    url, store_id, groups, per_thread, prefix, batch = job
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    from patronage.db.engine import create_engine_for
    from patronage.loyalty.schemas import PointsIn
    from patronage.loyalty.service import PointsRequest, change_points, change_points_many

    engine = create_engine_for(url, pool_size=len(groups))
    earn = PointsIn(kind="earn", points=100, reason="bench")
    spend = PointsIn(kind="adjust", points=-50, reason="bench")
    barrier = threading.Barrier(len(groups) + 1)
    server_cpu = [0.0] * len(groups)

    def run(thread: int) -> None:
        customers = groups[thread]

        def body(number: int) -> PointsIn:
            # Per member: earn, spend, earn, spend … so no debit is ever refused.
            return earn if (number // len(customers)) % 2 == 0 else spend

        with engine.connect() as connection:
            pid = None
            if engine.dialect.name == "postgresql":
                pid = connection.scalar(text("SELECT pg_backend_pid()"))
                connection.commit()
            barrier.wait()
            before = _cpu_seconds(pid) if pid else 0.0
            for first in range(0, per_thread, batch):
                numbers = range(first, min(first + batch, per_thread))
                key = f"{prefix}-t{thread}"
                with Session(bind=connection, expire_on_commit=False) as session:
                    if batch == 1:
                        change_points(
                            session,
                            store_id=store_id,
                            customer_id=customers[first % len(customers)],
                            points_in=body(first),
                            idempotency_key=f"{key}-{first}",
                        )
                    else:
                        change_points_many(
                            session,
                            store_id=store_id,
                            requests=[
                                PointsRequest(
                                    customers[number % len(customers)],
                                    body(number),
                                    f"{key}-{number}",
                                )
                                for number in numbers
                            ],
                        )
                    session.commit()
            server_cpu[thread] = _cpu_seconds(pid) - before if pid else 0.0

    threads = [threading.Thread(target=run, args=(number,)) for number in range(len(groups))]
    for thread in threads:
        thread.start()
    barrier.wait()
    start, cpu = time.perf_counter(), time.process_time()
    for thread in threads:
        thread.join()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    engine.dispose()
    return per_thread * len(groups), seconds, cpu, sum(server_cpu)


@dataclass
class ServiceRun:
    """What `run_service` measured."""

    mutations: int
    seconds: float
    client_cpu: float
    server_cpu: float
    store_id: int


def run_service(
    url: str, n: int, workers: int, contention: bool, batch: int = 1, threads: int = 1
) -> ServiceRun:
    """N mutations through the service by W processes of T threads each.

    Without contention every thread has its own members; with it all hit one member. The time is
    the slowest process's own, so process start-up is not counted.
    """
    lanes = workers * threads
    members = 1 if contention else MEMBERS_PER_WORKER * lanes
    store_id, _, customers = prepare(url, members)
    per_thread = n // lanes
    if contention:
        _fund(url, store_id, customers[0], n * 100)  # every debit stays covered
    else:
        _enrol(url, store_id, customers)
    jobs: list[ServiceJob] = []
    for worker in range(workers):
        groups = [
            customers if contention else customers[lane::lanes]
            for lane in range(worker * threads, (worker + 1) * threads)
        ]
        jobs.append((url, store_id, groups, per_thread, f"w{worker}", batch))
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers) as pool:
        results = pool.map(_service_worker, jobs)
    return ServiceRun(
        mutations=sum(result[0] for result in results),
        seconds=max(result[1] for result in results),
        client_cpu=sum(result[2] for result in results),
        server_cpu=sum(result[3] for result in results),
        store_id=store_id,
    )


def _enrol(url: str, store_id: int, customers: list[int]) -> None:
    """Make every customer a member with a first earn (not timed: enrolment happens once)."""
    from patronage.db.engine import create_engine_for
    from patronage.db.session import session_scope
    from patronage.loyalty.schemas import PointsIn
    from patronage.loyalty.service import PointsRequest, change_points_many

    engine = create_engine_for(url)
    welcome = PointsIn(kind="earn", points=100, reason="bench enrolment")
    for start in range(0, len(customers), 500):
        with session_scope(engine) as session:
            change_points_many(
                session,
                store_id=store_id,
                requests=[
                    PointsRequest(customer, welcome, f"enrol-{customer}")
                    for customer in customers[start : start + 500]
                ],
            )
    engine.dispose()


def _fund(url: str, store_id: int, customer_id: int, points: int) -> None:
    from patronage.db.engine import create_engine_for
    from patronage.db.session import session_scope
    from patronage.loyalty.schemas import PointsIn
    from patronage.loyalty.service import change_points

    engine = create_engine_for(url)
    with session_scope(engine) as session:
        change_points(
            session,
            store_id=store_id,
            customer_id=customer_id,
            points_in=PointsIn(kind="earn", points=points, reason="bench funding"),
            idempotency_key=f"fund-{uuid.uuid4().hex}",
        )
    engine.dispose()


# ---- api ---------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _server(url: str) -> Iterator[tuple[str, int]]:
    """A uvicorn process serving the API on `url`'s database; yields (base URL, its pid)."""
    import httpx

    port = _free_port()
    environment = {**os.environ, "PATRONAGE_DATABASE_URL": url}
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "patronage.api.app:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=environment,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError("the API server did not start")
        yield base, process.pid
    finally:
        process.terminate()
        process.wait(timeout=20)


def run_api(url: str, n: int, workers: int, contention: bool) -> ServiceRun:
    """N mutations through the HTTP API by W client threads (the server's CPU is measured as
    `server_cpu`, the PostgreSQL backends' is not)."""
    import httpx

    members = 1 if contention else MEMBERS_PER_WORKER * workers
    store_id, secret_key, customers = prepare(url, members)
    if contention:
        _fund(url, store_id, customers[0], n * 100)
    else:
        _enrol(url, store_id, customers)
    per_worker = n // workers
    failures: list[str] = []

    def client_work(worker: int) -> None:
        own = customers if contention else customers[worker::workers]
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {secret_key}"}, timeout=120
        ) as client:
            for number in range(per_worker):
                customer = own[number % len(own)]
                earning = (number // len(own)) % 2 == 0
                body = (
                    {"kind": "earn", "points": 100, "reason": "bench"}
                    if earning or contention
                    else {"kind": "adjust", "points": -50, "reason": "bench"}
                )
                response = client.post(
                    f"/v1/members/{customer}/points",
                    headers={"Idempotency-Key": f"w{worker}-{number}"},
                    json=body,
                )
                if response.status_code != 201:
                    failures.append(response.text)

    with _server(url) as (base, pid):
        threads = [threading.Thread(target=client_work, args=(w,)) for w in range(workers)]
        start, cpu, server_cpu = time.perf_counter(), time.process_time(), _cpu_seconds(pid)
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        server_cpu = _cpu_seconds(pid) - server_cpu
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, e.g. {failures[0]}")
    return ServiceRun(per_worker * workers, seconds, cpu, server_cpu, store_id)


# ---- verify ------------------------------------------------------------------------------------


def load_members(url: str, n: int) -> int:
    """Bulk-load N consistent members (3 entries, 2 lots, 1 consumption each); return store id."""
    from sqlalchemy import insert

    from patronage.db.base import table_of
    from patronage.db.engine import create_engine_for
    from patronage.db.session import session_scope
    from patronage.loyalty.models import (
        LedgerEntry,
        LotConsumption,
        LoyaltyMember,
        PointLot,
    )
    from patronage.loyalty.program import default_program, set_program
    from patronage.stores.service import create_store

    engine: Engine = create_engine_for(url)
    with session_scope(engine) as session:
        store_id = create_store(session, name="Verify bench", base_currency="USD").store.id
        set_program(session, store_id, default_program(), source="bench")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    expires = now + timedelta(days=365)
    chunk = 20_000
    postgres = engine.dialect.name == "postgresql"
    for start in range(0, n, chunk):
        ids = range(start + 1, min(start + chunk, n) + 1)
        customers = [{"id": i, "store_id": store_id, "email": f"v{i}@example.com"} for i in ids]
        members = [
            {"id": i, "store_id": store_id, "customer_id": i, "available_points": 200,
             "pending_points": 50, "debt_points": 0, "tier": "bronze", "tier_since_at": now,
             "rolling_spend": 0, "rolling_orders": 0, "enrolled_at": now, "updated_at": now}
            for i in ids
        ]  # fmt: skip
        entries, lots, consumptions = [], [], []
        for i in ids:
            first, second, third = 3 * i - 2, 3 * i - 1, 3 * i
            for entry_id, kind, available, pending in (
                (first, "earn", 300, 0),
                (second, "redeem", -100, 0),
                (third, "earn", 0, 50),
            ):
                entries.append(
                    {"id": entry_id, "store_id": store_id, "member_id": i, "kind": kind,
                     "available_delta": available, "pending_delta": pending, "occurred_at": now,
                     "idempotency_key": f"bench:{entry_id}", "details": {}}
                )  # fmt: skip
            lots.append(
                {"id": 2 * i - 1, "store_id": store_id, "member_id": i, "entry_id": first,
                 "source": "earn", "amount": 300, "remaining": 200, "created_at": now,
                 "activates_at": now, "activated_at": now, "expires_at": expires}
            )  # fmt: skip
            lots.append(
                {"id": 2 * i, "store_id": store_id, "member_id": i, "entry_id": third,
                 "source": "earn", "amount": 50, "remaining": 50, "created_at": now,
                 "activates_at": None, "activated_at": None, "expires_at": None}
            )  # fmt: skip
            consumptions.append(
                {"id": i, "store_id": store_id, "member_id": i, "entry_id": second,
                 "lot_id": 2 * i - 1, "amount": 100, "consumed_at": now}
            )  # fmt: skip
        if postgres:
            _copy(engine, "customers", customers, now)
            _copy(engine, "loyalty_members", members, now)
            _copy(engine, "loyalty_entries", entries, now)
            _copy(engine, "loyalty_lots", lots, now)
            _copy(engine, "loyalty_consumptions", consumptions, now)
        else:
            from patronage.customers.models import Customer

            with session_scope(engine) as session:
                customer_rows = [
                    {**row, "tags": [], "attributes": {}, "created_at": now, "updated_at": now}
                    for row in customers
                ]
                session.execute(insert(table_of(Customer)), customer_rows)
                session.execute(insert(table_of(LoyaltyMember)), members)
                session.execute(insert(table_of(LedgerEntry)), entries)
                session.execute(insert(table_of(PointLot)), lots)
                session.execute(insert(table_of(LotConsumption)), consumptions)
    if postgres:
        with engine.begin() as connection:
            for table in ("customers", "loyalty_members", "loyalty_entries", "loyalty_lots",
                          "loyalty_consumptions"):  # fmt: skip
                connection.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
                connection.exec_driver_sql(f"ANALYZE {table}")
    engine.dispose()
    return store_id


def _copy(engine: Engine, table: str, rows: list[dict[str, Any]], now: datetime) -> None:
    """COPY rows into a PostgreSQL table (scaled money and naive UTC, as the column types do)."""
    if not rows:
        return
    if table == "customers":
        rows = [{**row, "tags": "[]", "attributes": "{}", "created_at": now,
                 "updated_at": now} for row in rows]  # fmt: skip
    columns = list(rows[0])
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(
                    [
                        value.replace(tzinfo=None) if isinstance(value, datetime)
                        else json.dumps(value) if isinstance(value, dict)
                        else value
                        for value in (row[column] for column in columns)
                    ]
                )  # fmt: skip
        raw.commit()
    finally:
        raw.close()


def run_verify(url: str, n: int) -> tuple[int, float, int, bool]:
    """Load N members, then time verify; (members, seconds, store id, ok)."""
    from patronage.db.engine import create_engine_for
    from patronage.db.session import session_scope
    from patronage.loyalty.ledger import verify

    store_id = load_members(url, n)
    engine = create_engine_for(url)
    with session_scope(engine) as session:
        start = time.perf_counter()
        report = verify(session, store_id)
        seconds = time.perf_counter() - start
    engine.dispose()
    if report.members != n:
        raise RuntimeError(f"loaded {report.members} members, expected {n}")
    return n, seconds, store_id, report.ok


# ---- main --------------------------------------------------------------------------------------


def _per_mutation(seconds: float, mutations: int) -> str:
    return f"{seconds * 1000 / max(mutations, 1):.2f} ms"


def measure(
    case: str,
    backend: str,
    n: int,
    workers: int,
    contention: bool,
    batch: int = 1,
    threads: int = 1,
) -> Result:
    """Run one case on one backend and return its measured line."""
    with database(backend) as url:
        if case == "verify":
            return _measure_verify(url, backend, n)
        if case == "service":
            run = run_service(url, n, workers, contention, batch, threads)
            lanes = f"{workers} processes x {threads} threads, each thread with its own "
            lanes += "connection" + ("" if contention else " and members (enrolled untimed)")
            cpu = (
                f"client CPU {_per_mutation(run.client_cpu, run.mutations)}"
                + (
                    f", PostgreSQL CPU {_per_mutation(run.server_cpu, run.mutations)}"
                    if backend == "postgresql"
                    else ""
                )
                + " a mutation"
            )
            if backend == "postgresql":
                setting = synchronous_commit(url)
                cpu += f"; synchronous_commit={setting} (as the server is configured)"
        else:
            run = run_api(url, n, workers, contention)
            lanes = f"{workers} client threads, one uvicorn process"
            lanes += "" if contention else ", members enrolled untimed"
            cpu = (
                f"server CPU {_per_mutation(run.server_cpu, run.mutations)} a mutation "
                f"(uvicorn process, database not counted)"
            )
    per_transaction = (
        "each mutation its own committed transaction"
        if batch == 1 or case != "service"
        else f"{batch} mutations per transaction (change_points_many)"
    )
    result = Result(
        benchmark="Points ledger mutations",
        variant=f"{'service' if case == 'service' else 'HTTP API'}"
        f"{f' batches of {batch}' if case == 'service' and batch > 1 else ''}, "
        f"{'one member (contention)' if contention else 'many members'}",
        backend=backend, items=run.mutations, unit="mutations", seconds=round(run.seconds, 3),
        peak_mb=round(peak_rss_mb(), 1),
        note=f"{lanes}; {per_transaction}; earns and debits alternate; {cpu}",
    )  # fmt: skip
    if case == "service" and backend == "postgresql" and not contention:
        result.target = f"≥ {SERVICE_TARGET:,} mutations/s"
        result.met = result.rate >= SERVICE_TARGET
    return result


def _measure_verify(url: str, backend: str, n: int) -> Result:
    items, seconds, _, ok = run_verify(url, n)
    result = Result(
        benchmark="Points ledger verify",
        variant="verify (set-based GROUP BY checks)",
        backend=backend, items=items, unit="members", seconds=round(seconds, 3),
        peak_mb=round(peak_rss_mb(), 1),
        note=f"3 entries, 2 lots, 1 consumption per member; ledger ok: {ok}",
    )  # fmt: skip
    scaled = seconds * 1_000_000 / max(n, 1)
    result.target = f"1,000,000 members < {VERIFY_TARGET_SECONDS} s"
    result.met = scaled < VERIFY_TARGET_SECONDS and ok
    if n < 1_000_000:
        result.note += f"; {scaled:.1f} s extrapolated to 1,000,000"
    return result


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--case", choices=("service", "api", "verify"), default="service")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--contention", action="store_true")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument(
        "--workers", type=int, default=None, help="processes (service) or client threads (api)"
    )
    parser.add_argument("--threads", type=int, default=None, help="service: threads per process")
    parser.add_argument(
        "--batch", type=int, default=1, help="service: mutations per transaction (default 1)"
    )
    arguments = parser.parse_args()
    postgres = arguments.backend == "postgresql"
    if arguments.case == "service":
        workers = arguments.workers or (DEFAULT_PROCESSES if postgres else 1)
        # SQLite has one writer at a time: more threads only wait in its busy handler, so they
        # are used where concurrency is the point (contention on one member).
        threads = arguments.threads or (
            (DEFAULT_THREADS_CONTENTION if arguments.contention else DEFAULT_THREADS)
            if postgres
            else (2 if arguments.contention else 1)
        )
    else:
        workers, threads = arguments.workers or (4 if postgres else 2), 1
    result = measure(
        arguments.case,
        arguments.backend,
        arguments.n,
        workers,
        arguments.contention,
        arguments.batch,
        threads,
    )
    print(json.dumps(asdict(result), ensure_ascii=False))


if __name__ == "__main__":
    main()
