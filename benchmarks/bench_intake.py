"""Tracking intake throughput: Segment batches over HTTP against a plain row-by-row ORM insert.

    python -m benchmarks.bench_intake --case patronage|baseline --backend sqlite|postgresql \
        --events N

`patronage` starts the API with `patronage serve` (one uvicorn process) in a subprocess on a free
loopback port against a fresh database, creates a store, warms the server up with 201 events of
other visitors (not counted), and posts N realistic events in batches of 100 (product views and
adds, pages, identifies, checkouts, 0.5 % Order Completed) over 8 concurrent keep-alive
connections (`--connections`), each body serialised and gzip-compressed up front as the Segment
and RudderStack libraries send them (`--no-gzip` for plain JSON). The server's CPU seconds (user
and system, from /proc) are reported a request beside the client's. `baseline` inserts the same
events in-process with `session.add(Event(...))` per event and one commit per batch of 100,
resolving no customers and no orders. Prints one JSON object with the fields of
`benchmarks.common.Result`.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
from sqlalchemy import Engine, func, select

from benchmarks.common import POSTGRES_ADMIN, Result, peak_rss_mb, stopwatch
from patronage.db.engine import create_engine_for
from patronage.db.migrate import upgrade
from patronage.db.session import session_scope

BENCHMARK = "Tracking intake (Segment /v1/batch, 100 events a request)"
TARGET_RATE = 10_000
BATCH_SIZE = 100
START = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
SECRET_KEY = "benchmark-master-secret"
WARM_UP_EVENTS = 200  # posted before the measured run, not counted

_PRODUCTS = [
    (f"SKU-{number:04d}", f"Product {number}", category, price)
    for number, (category, price) in enumerate(
        [("Tea", 12.5), ("Coffee", 18.0), ("Mugs", 24.9), ("Gifts", 39.0), ("Books", 15.75)] * 40
    )
]
_PAGES = ["Home", "Collection", "Product", "Cart", "Blog", "About", "Search"]
_AGENTS = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
]


# --- Realistic traffic --------------------------------------------------------------------------


def make_batches(events: int, seed: int = 7, prefix: str = "") -> list[list[dict[str, Any]]]:
    """Deterministic visitor traffic: ~60 % signed in, the rest anonymous, 0.5 % orders.

    `prefix` starts every visitor, user and order id, for traffic that shares none with another.
    """
    rng = random.Random(seed)
    visitors = max(events // 25, 10)
    messages: list[dict[str, Any]] = []
    for index in range(events):
        visitor = rng.randrange(visitors)
        signed_in = visitor % 5 < 3
        moment = START + timedelta(seconds=index * 2 + rng.random())
        base: dict[str, Any] = {
            "messageId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "anonymousId": f"{prefix}anon-{visitor:07d}",
            "timestamp": moment.isoformat(timespec="milliseconds"),
            "context": {
                "library": {"name": "analytics.js", "version": "5.2.0"},
                "ip": f"203.0.113.{visitor % 250}",
                "userAgent": _AGENTS[visitor % len(_AGENTS)],
                "locale": ("en-US", "de-DE", "en-IN")[visitor % 3],
                "page": {"url": f"https://shop.example/p/{visitor % 97}", "referrer": ""},
            },
            "integrations": {},
        }
        if signed_in:
            base["userId"] = f"{prefix}user-{visitor:07d}"
        roll = rng.random()
        sku, name, category, price = _PRODUCTS[rng.randrange(len(_PRODUCTS))]
        product = {"product_id": sku, "sku": sku, "name": name, "category": category,
                   "price": price, "currency": "USD"}  # fmt: skip
        if roll < 0.40:  # shares of traffic: a few % of sessions of 10-20 events end in an order
            message = {**base, "type": "track", "event": "Product Viewed", "properties": product}
        elif roll < 0.52:
            message = {**base, "type": "track", "event": "Product Added",
                       "properties": {**product, "quantity": rng.randint(1, 3),
                                      "cart_id": f"cart-{visitor}"}}  # fmt: skip
        elif roll < 0.795:
            page = _PAGES[rng.randrange(len(_PAGES))]
            message = {**base, "type": "page", "name": page,
                       "properties": {"path": f"/{page.lower()}", "title": page}}  # fmt: skip
        elif roll < 0.875:
            message = {**base, "type": "identify",
                       "traits": {"email": f"{prefix}visitor{visitor}@example.com",
                                  "firstName": f"Visitor{visitor}", "lastName": "Example",
                                  "country": ("US", "DE", "IN")[visitor % 3],
                                  "plan": ("free", "plus")[visitor % 2]}}  # fmt: skip
            message["userId"] = f"{prefix}user-{visitor:07d}"
        elif roll < 0.995:
            event = ("Cart Viewed", "Checkout Started")[rng.randrange(2)]
            message = {**base, "type": "track", "event": event,
                       "properties": {"cart_id": f"cart-{visitor}", "value": price,
                                      "products": [product]}}  # fmt: skip
        else:
            quantity = rng.randint(1, 3)
            message = {**base, "type": "track", "event": "Order Completed",
                       "properties": {"order_id": f"{prefix}bench-{index}",
                                      "total": price * quantity + 5,
                                      "shipping": 5, "tax": 0, "currency": "USD",
                                      "products": [{**product, "quantity": quantity}]}}  # fmt: skip
            message["userId"] = f"{prefix}user-{visitor:07d}"
        messages.append(message)
    return [messages[start : start + BATCH_SIZE] for start in range(0, events, BATCH_SIZE)]


def _order_completed(order_id: str, moment: str) -> dict[str, Any]:
    return {
        "type": "track", "event": "Order Completed", "userId": f"{order_id}-buyer",
        "messageId": order_id, "timestamp": moment,
        "properties": {"order_id": order_id, "total": 17.5, "currency": "USD",
                       "products": [{"sku": "SKU-0000", "price": 12.5, "quantity": 1}]},
    }  # fmt: skip


# --- Databases -----------------------------------------------------------------------------------


@contextmanager
def fresh_database(backend: str) -> Iterator[str]:
    """A migrated, empty database of `backend`, removed afterwards; yields its URL."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="patronage-bench-") as directory:
            url = f"sqlite:///{Path(directory) / 'bench.db'}"
            _migrate(url)
            yield url
        return
    name = f"patronage_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    url = f"{base}/{name}"
    try:
        _migrate(url)
        yield url
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _migrate(url: str) -> None:
    engine = create_engine_for(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


def _new_store(engine: Engine) -> tuple[int, str]:
    from patronage.stores.service import create_store

    with session_scope(engine) as session:
        created = create_store(session, name="Benchmark", base_currency="USD")
        return created.store.id, created.publishable_key


def _count_events(engine: Engine, store_id: int) -> int:
    from patronage.tracking.models import Event

    with session_scope(engine) as session:
        return session.scalar(select(func.count()).where(Event.store_id == store_id)) or 0


# --- Cases ---------------------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def api_server(url: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run `patronage serve` in a subprocess on a loopback port; yield its URL and process."""
    port = _free_port()
    environment = {**os.environ, "PATRONAGE_DATABASE_URL": url}
    command = [
        sys.executable, "-c", "from patronage.cli.main import app; app()", "serve",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    # The server's stdout stays out of ours: benchmarks.run reads our last line as the result.
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the API server did not start")
            time.sleep(0.1)
        yield base_url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _cpu_seconds_of(process: subprocess.Popen[bytes]) -> float:
    """User and system CPU time a running child process has used so far (Linux), else 0."""
    try:
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_of(process: subprocess.Popen[bytes]) -> float:
    """Peak resident memory of a running child process in MiB (Linux), else of this one."""
    try:
        for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mb()


def _post_all(
    base_url: str, headers: dict[str, str], bodies: list[bytes], connections: int
) -> list[str]:
    """Post every body to /v1/batch over `connections` keep-alive connections; return failures.

    A plain `http.client` connection per thread, with the bodies and headers prepared up front,
    so the client spends as little of the machine's CPU as it can beside the server.
    """
    host, port = base_url.removeprefix("http://").split(":")
    failures: list[str] = []

    def send(number: int) -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        try:
            for body in bodies[number::connections]:
                connection.request("POST", "/v1/batch", body, headers)
                response = connection.getresponse()
                answer = response.read()
                if response.status != 200 or answer != b'{"success":true}':
                    failures.append(f"{response.status} {answer[:200]!r}")
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(number,)) for number in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def run_patronage(backend: str, events: int, connections: int, use_gzip: bool) -> Result:
    """Post the events to a real server process and measure events per second."""
    batches = make_batches(events)
    sent_at = datetime.now(UTC).isoformat()
    bodies = [orjson.dumps({"batch": batch, "sentAt": sent_at}) for batch in batches]
    if use_gzip:
        bodies = [gzip.compress(body, compresslevel=6) for body in bodies]
    with fresh_database(backend) as url:
        engine = create_engine_for(url)
        store_id, write_key = _new_store(engine)
        token = base64.b64encode(f"{write_key}:".encode()).decode()
        headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
        if use_gzip:
            headers["Content-Encoding"] = "gzip"
        with api_server(url) as (base_url, process):
            # Warm up: the write key cache, the writer thread and the statement caches.
            # Its visitors are not the measured ones, and it holds an order (the first order
            # a process writes prepares the statements of the order hooks).
            warm_up = make_batches(WARM_UP_EVENTS, seed=1, prefix="warm-up-")
            warm_up[0].append(_order_completed("warm-up-order", sent_at))
            warm_up_bodies = [orjson.dumps({"batch": b, "sentAt": sent_at}) for b in warm_up]
            failures = _post_all(base_url, {**headers, "Content-Encoding": "identity"},
                                 warm_up_bodies, 1)  # fmt: skip
            server_cpu = _cpu_seconds_of(process)
            client_cpu = time.process_time()
            with stopwatch() as elapsed:
                failures += _post_all(base_url, headers, bodies, connections)
            seconds = elapsed()
            client_cpu = time.process_time() - client_cpu
            server_cpu = _cpu_seconds_of(process) - server_cpu
            peak = _peak_rss_of(process)
        stored = _count_events(engine, store_id) - WARM_UP_EVENTS - 1
        engine.dispose()
    if failures:
        raise SystemExit(f"{len(failures)} request(s) failed, e.g. {failures[0]}")
    if stored != events:
        raise SystemExit(f"expected {events} stored events, found {stored}")
    rate = events / seconds
    met = rate >= TARGET_RATE if backend == "sqlite" else None
    per_request = 1000 / len(bodies)
    return Result(
        benchmark=BENCHMARK,
        variant=f"Patronage: HTTP /v1/batch, one uvicorn process, {connections} connections"
        + (", gzip" if use_gzip else ""),
        backend=backend, items=events, unit="events", seconds=round(seconds, 3),
        peak_mb=round(peak, 1), target=f"≥ {TARGET_RATE:,} events/s" if backend == "sqlite" else "",
        met=met,
        note="includes HTTP, auth, customer resolution, de-duplication and orders; server CPU "
        f"{server_cpu * per_request:.1f} ms a request ({server_cpu:.2f} s), client CPU "
        f"{client_cpu * per_request:.1f} ms a request; peak memory is the server's",
    )  # fmt: skip


def run_baseline(backend: str, events: int) -> Result:
    """Insert the same events row by row through the ORM, one commit per batch of 100."""
    from patronage.kit.times import parse_timestamp
    from patronage.tracking.models import Event

    batches = make_batches(events)
    with fresh_database(backend) as url:
        engine = create_engine_for(url)
        store_id, _ = _new_store(engine)
        cpu = time.process_time()
        with stopwatch() as elapsed:
            for batch in batches:
                with session_scope(engine) as session:
                    received_at = datetime.now(UTC)
                    for message in batch:
                        session.add(
                            Event(
                                store_id=store_id,
                                message_id=message["messageId"],
                                type=message["type"],
                                name=message.get("event") or message.get("name"),
                                user_id=message.get("userId"),
                                anonymous_id=message.get("anonymousId"),
                                occurred_at=parse_timestamp(message["timestamp"]),
                                received_at=received_at,
                                source="tracking",
                                properties=message.get("properties") or message.get("traits") or {},
                                context=message["context"],
                            )
                        )
        seconds = elapsed()
        cpu = time.process_time() - cpu
        stored = _count_events(engine, store_id)
        engine.dispose()
    if stored != events:
        raise SystemExit(f"expected {events} stored events, found {stored}")
    return Result(
        benchmark=BENCHMARK,
        variant="baseline: row-by-row ORM insert in-process, commit per 100",
        backend=backend, items=events, unit="events", seconds=round(seconds, 3),
        peak_mb=round(peak_rss_mb(), 1),
        note="no HTTP, no customers, no orders, no de-duplication; CPU "
        f"{cpu / len(batches) * 1000:.1f} ms per 100 events ({cpu:.2f} s)",
    )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, run one case and print its Result as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--case", choices=("patronage", "baseline"), required=True)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--gzip", action=argparse.BooleanOptionalAction, default=True,
                        help="gzip the bodies, as the Segment and Rudder libraries do")  # fmt: skip
    arguments = parser.parse_args(argv)
    # Before anything reads the settings: stores encrypt their webhook secret with this key.
    os.environ.setdefault("PATRONAGE_SECRET_KEY", SECRET_KEY)
    if arguments.case == "patronage":
        result = run_patronage(
            arguments.backend, arguments.events, arguments.connections, arguments.gzip
        )
    else:
        result = run_baseline(arguments.backend, arguments.events)
    print(json.dumps(asdict(result), ensure_ascii=False))


if __name__ == "__main__":
    main()
