"""HTTP routes of stored bulk operations (jobs/operations.py): read one, list them, follow one live.

An operation is started by `POST /api/jobs/cancel|delete` with `Prefer: respond-async` (jobs/routes.py);
a conductor runs it, so it goes on whatever happens to the gateway that took it, and any gateway
answers about it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import Any

from litestar import Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath

from jobline.contract.events import encoder
from jobline.contract.operations import BulkOperation, OperationView
from jobline.jobs.operations import Operations

from ..live import sse
from ..live.event_stream import EventStream, StreamWatchdog
from ..settings import GatewaySettings


def links(operation_id: str) -> dict[str, str]:
    base = f"/api/operations/{operation_id}"
    return {"self": base, "events": f"{base}/events"}


def view(operation: BulkOperation) -> OperationView:
    return OperationView(**{f: getattr(operation, f) for f in operation.__struct_fields__},
                         links=links(operation.id))


@get("/api/operations", summary="The newest bulk operations (the last 100), newest first", errors=(503,))
async def list_operations(operations: NamedDependency[Operations]) -> list[OperationView]:
    return [view(op) for op in await operations.newest()]


@get("/api/operations/{operation_id:str}", summary="A bulk operation: its filter, status and counts so far",
     errors=(404, 503),
     description="`status`: `queued` (no conductor has taken it yet), `running`, `done` or `failed` (`error` says "
     "why). `matched`: the jobs found to act on; `done`: acted on so far (`cancelled`, `cancelling` or `deleted`); "
     "`runs` > 1: a conductor went away and another went on where it stopped.")
async def get_operation(operations: NamedDependency[Operations], operation_id: FromPath[str]) -> OperationView:
    return view(await operations.get(operation_id))


@get("/api/operations/{operation_id:str}/events", summary="A bulk operation's progress, live (Server-Sent Events)",
     errors=(404, 503), response_description="text/event-stream",
     description="An `operation` event with the record now and at each change (counts at most four times a "
     "second), then `done` or `failed` with the final record, after which the stream ends (at once for one "
     "that has ended). Comments keep a quiet stream open.")
async def operation_events(operations: NamedDependency[Operations], watchdog: NamedDependency[StreamWatchdog],
                           settings: NamedDependency[GatewaySettings], operation_id: FromPath[str]) -> Response[Any]:
    changes = operations.follow(operation_id)
    first = await anext(changes)  # (a 404 now, not an empty stream)
    return EventStream(_frames(first, changes, settings.heartbeat_s), watchdog)


async def _frames(first: BulkOperation, changes: AsyncGenerator[BulkOperation, None],
                  heartbeat_s: float) -> AsyncGenerator[bytes, None]:
    queue: asyncio.Queue[BulkOperation | None] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for operation in changes:
                queue.put_nowait(operation)
        finally:
            queue.put_nowait(None)

    pumping = asyncio.create_task(pump()) if not first.is_finished else None
    try:
        current = first
        yield _frame(current)
        while not current.is_finished:
            try:
                async with asyncio.timeout(heartbeat_s):
                    changed = await queue.get()
            except TimeoutError:
                yield sse.HEARTBEAT
                continue
            if changed is None:
                return  # (the watch ended: the record expired, or the connection closed)
            current = changed
            yield _frame(current)
    finally:
        if pumping is not None:
            pumping.cancel()
            with contextlib.suppress(BaseException):
                await pumping
        await changes.aclose()


def _frame(operation: BulkOperation) -> bytes:
    return sse.frame(operation.status if operation.is_finished else "operation", encoder.encode(view(operation)))


operation_handlers = [list_operations, get_operation, operation_events]
