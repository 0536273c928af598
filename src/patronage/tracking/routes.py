"""The Segment-compatible tracking API: `/v1/batch`, `/v1/track`, `/v1/identify`, `/v1/page`, …

Authentication is the store's publishable write key as the HTTP Basic user name, exactly as the
Segment and RudderStack clients send it. An accepted request always gets `200 {"success": true}`
(RudderStack counts anything else as a failure); only unreadable, oversized or unauthenticated
requests get a problem+json error, which also carries Segment's `code` and `message` fields so that
the clients report it instead of retrying it.

The handlers are `async`: the body is read and parsed on the event loop, and the database work is
handed to one writer thread per database that commits concurrent requests together (see
`IntakeWriter`); a request is answered only after its batch is committed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from patronage.api.deps import write_key_store_id
from patronage.db.session import session_factory
from patronage.errors import AuthenticationError
from patronage.kit.clock import utcnow
from patronage.tracking.intake import Delivery, IntakeSummary, ingest_deliveries
from patronage.tracking.schemas import (
    MAX_BATCH_BYTES,
    PayloadTooLargeError,
    decode_body,
    parse_batch,
    parse_single,
)

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["tracking"])

_ACCEPTED = b'{"success":true}'
_ATTEMPTS = 3
_RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock
# A gzip body can be a little larger than what it holds; anything beyond this is refused unread.
_MAX_WIRE_BYTES = MAX_BATCH_BYTES + 64 * 1024
_GROUP_MESSAGES = 2_000  # the most messages one shared transaction takes
_GATHER_SECONDS = 0.003  # the longest a transaction waits for more requests to join it
_GATHER_POLL_SECONDS = 0.0005
_writers: dict[Engine, IntakeWriter] = {}  # one per database, for the life of the process
_writers_guard = threading.Lock()


class Accepted(BaseModel):
    """The answer to every accepted request."""

    success: bool = True


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Accepted, "description": "The messages were accepted"},
    400: {"description": "Not JSON, not a batch, or a message over 32 KB"},
    401: {"description": "Missing or invalid write key"},
    413: {"description": "The batch is over 500 KB after decompression"},
    415: {"description": "A Content-Encoding other than gzip, deflate or none"},
}


def tracking_store_id(request: Request) -> int:
    """Authenticate the write key; the error carries `code`/`message` for Segment-style clients."""
    try:
        return write_key_store_id(request)
    except AuthenticationError as error:
        detail = error.detail
        raise AuthenticationError(detail, code="unauthorized", message=detail) from error


TrackingStoreId = Annotated[int, Depends(tracking_store_id)]


@router.post("/batch", responses=_RESPONSES, response_class=Response)
async def post_batch(request: Request, store_id: TrackingStoreId) -> Response:
    """Accept a batch of messages, as the Segment and RudderStack libraries send them."""
    await _record(request, store_id, parse_batch)
    return Response(_ACCEPTED, media_type="application/json")


def _single(message_type: str) -> Callable[[Request, int], Awaitable[Response]]:
    def parse(data: bytes) -> tuple[list[Any], Any]:
        return parse_single(data, message_type)

    async def post_single(request: Request, store_id: TrackingStoreId) -> Response:
        await _record(request, store_id, parse)
        return Response(_ACCEPTED, media_type="application/json")

    post_single.__name__ = f"post_{message_type}"
    post_single.__doc__ = f"Accept one `{message_type}` message (the type comes from the path)."
    return post_single


for _message_type in ("track", "identify", "page", "screen", "group", "alias"):
    router.add_api_route(
        f"/{_message_type}",
        _single(_message_type),
        methods=["POST"],
        responses=_RESPONSES,
        response_class=Response,
        summary=f"Accept one {_message_type} message",
    )


async def _read_body(request: Request) -> bytes:
    """The decoded body, refusing oversized ones before reading them whole."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > _MAX_WIRE_BYTES:
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > _MAX_WIRE_BYTES:
            raise _too_large()
        chunks.append(chunk)
    return decode_body(b"".join(chunks), request.headers.get("content-encoding"))


def _too_large() -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"the request body is over {MAX_BATCH_BYTES // 1024} KB; send fewer messages per request",
        code="payload_too_large", message="batch exceeds 500 KB",
    )  # fmt: skip


async def _record(
    request: Request, store_id: int, parse: Callable[[bytes], tuple[list[Any], Any]]
) -> None:
    """Read and parse the body, hand the batch to the writer, return once it is committed."""
    writer = writer_for(request.app.state.engine)
    with writer.arriving():
        messages, sent_at = parse(await _read_body(request))
        future = writer.submit(store_id, Delivery(messages, sent_at, utcnow()))
    summary = await asyncio.wrap_future(future)
    log.debug("tracking: store %s batch %s", store_id, summary)


# --- The unit of work: group commit -------------------------------------------------------------


@dataclass(slots=True)
class _Job:
    store_id: int
    delivery: Delivery
    future: Future[IntakeSummary]


class IntakeWriter:
    """Writes tracking batches for one database, committing every batch waiting in one transaction.

    Each request hands its batch to the writer and is answered only once the transaction holding
    it has committed. While one transaction runs, the batches of concurrent requests queue up; the
    next transaction takes them all (group commit), so a commit, a customer resolution and an
    order upsert serve many requests. If a shared transaction fails, its batches are retried one by
    one, so that a bad batch fails alone. A unique-key race or deadlock with another process is
    retried (the intake is idempotent).

    Before starting a transaction the writer waits briefly (at most `_GATHER_SECONDS`) for
    requests whose bodies are still being read, or — when the last transaction already held
    several requests — for the next ones the same clients are about to send, so that they join
    it instead of each paying for a transaction: the group-commit delay, taken only when
    requests are arriving concurrently.
    """

    def __init__(self, engine: Engine) -> None:
        self._factory = session_factory(engine)
        self._queue: SimpleQueue[_Job] = SimpleQueue()
        self._arriving = 0
        self._arriving_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="tracking-writer", daemon=True)
        self._thread.start()

    @contextmanager
    def arriving(self) -> Iterator[None]:
        """Mark a request as on its way to `submit` (its body is being read and parsed)."""
        with self._arriving_lock:
            self._arriving += 1
        try:
            yield
        finally:
            with self._arriving_lock:
                self._arriving -= 1

    def submit(self, store_id: int, delivery: Delivery) -> Future[IntakeSummary]:
        """Queue a batch; the future resolves once it is committed."""
        future: Future[IntakeSummary] = Future()
        self._queue.put(_Job(store_id, delivery, future))
        return future

    def _run(self) -> None:
        concurrent = False
        while True:
            jobs = [self._queue.get()]
            size = len(jobs[0].delivery.raw_messages)
            deadline = time.monotonic() + _GATHER_SECONDS
            while size < _GROUP_MESSAGES:
                try:
                    job = self._queue.get_nowait()
                except Empty:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not (self._arriving or concurrent):
                        break
                    try:
                        job = self._queue.get(timeout=min(remaining, _GATHER_POLL_SECONDS))
                    except Empty:
                        continue
                jobs.append(job)
                size += len(job.delivery.raw_messages)
            concurrent = len(jobs) > 1
            try:
                self._write(jobs)
            except BaseException as error:  # never let the writer die: fail these requests only
                log.exception("tracking: the writer failed a transaction")
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(error)

    def _write(self, jobs: list[_Job]) -> None:
        if len(jobs) > 1:
            try:
                summary = self._commit(jobs)
            except Exception:
                log.warning("tracking: a shared transaction failed; writing its batches one by one",
                            exc_info=True)  # fmt: skip
            else:
                for job in jobs:
                    job.future.set_result(summary)
                return
        for job in jobs:
            try:
                job.future.set_result(self._commit([job]))
            except BaseException as error:
                job.future.set_exception(error)

    def _commit(self, jobs: list[_Job]) -> IntakeSummary:
        by_store: dict[int, list[Delivery]] = {}
        for job in jobs:
            by_store.setdefault(job.store_id, []).append(job.delivery)
        for attempt in range(1, _ATTEMPTS + 1):
            with self._factory() as session:
                try:
                    summary = IntakeSummary()
                    for store_id, deliveries in by_store.items():
                        summary.add(
                            ingest_deliveries(session, store_id=store_id, deliveries=deliveries)
                        )
                    session.commit()
                    return summary
                except (IntegrityError, OperationalError) as error:
                    session.rollback()
                    if attempt == _ATTEMPTS or not _is_race(error):
                        raise
                    log.info("tracking: concurrent writer race (%s), retrying", error.orig)
                except BaseException:
                    session.rollback()
                    raise
        raise AssertionError("unreachable")


def _is_race(error: IntegrityError | OperationalError) -> bool:
    if isinstance(error, IntegrityError):
        return True
    return getattr(error.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES


def writer_for(engine: Engine) -> IntakeWriter:
    """The process's tracking writer for `engine`, started on first use."""
    with _writers_guard:
        writer = _writers.get(engine)
        if writer is None:
            writer = _writers[engine] = IntakeWriter(engine)
    return writer
