"""The history service's queries over NATS request/reply, as a `nats.micro` service.

`jobline-history` answers on `rpc.history.<endpoint>` (a queue group: several instances share the
load) and shows up in `nats micro ls/info/stats`. Requests and replies are the contract's types
(contract/history.py). Each request is answered in a task of its own, so a slow search does not
hold up the lookups queued behind it on the same endpoint.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from nats import micro
from nats.aio.client import Client
from nats.micro.request import Request
from nats.micro.service import Service

from jobline.contract.events import encoder
from jobline.contract.history import (
    ActivityRequest,
    CountsRequest,
    EventsRequest,
    JobRequest,
    SearchRequest,
    StatusRequest,
    WindowRequest,
)
from jobline.runtime.watermark import Watermark

from . import queries
from .settings import HistorySettings
from .store import HistoryStore

log = logging.getLogger(__name__)
VERSION = "1.0.0"


class QueryService:
    def __init__(self, nc: Client, settings: HistorySettings, store: HistoryStore, watermark: Watermark):
        self._nc = nc
        self._settings = settings
        self._store = store
        self._watermark = watermark
        self._service: Service | None = None
        self._inflight: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        names = self._settings.names
        self._service = await micro.add_service(
            self._nc, name=names.history_service, version=VERSION,
            description="Jobline job history: every job and event, from the job stream, in a database",
            metadata={"namespace": names.namespace, "backend": self._store.db.backend}, queue_group="history")
        store = self._store
        endpoints: dict[str, tuple[type[Any], Callable[[Any], Awaitable[Any]]]] = {
            "window": (WindowRequest, lambda r: store.read(queries.window, r)),
            "job": (JobRequest, lambda r: store.read(queries.job, r)),
            "search": (SearchRequest, lambda r: store.read(queries.search, r)),
            "events": (EventsRequest, lambda r: store.read(queries.events, r)),
            "counts": (CountsRequest, lambda r: store.read(queries.counts, r)),
            "activity": (ActivityRequest, lambda r: store.read(queries.activity_since, r)),
            "status": (StatusRequest, lambda r: store.read(queries.status, max_age_s=self._settings.max_age_s,
                                                            writer=store.is_writer,
                                                            schema_version=store.schema_version)),
        }
        for name, (request_type, answer) in endpoints.items():
            await self._service.add_endpoint(name=name, subject=names.history_rpc(name),
                                             handler=self._handler(name, msgspec.json.Decoder(request_type), answer))
        log.info("history queries on %s", names.history_rpc("search").rsplit(".", 1)[0] + ".*")

    async def stop(self) -> None:
        if self._service is not None:
            await self._service.stop()
            self._service = None
        for task in list(self._inflight):
            task.cancel()
        await asyncio.gather(*self._inflight, return_exceptions=True)

    def _handler(self, name: str, decoder: msgspec.json.Decoder[Any],
                 answer: Callable[[Any], Awaitable[Any]]) -> Callable[[Request], Awaitable[None]]:
        async def handle(request: Request) -> None:
            task = asyncio.create_task(self._answer(name, request, decoder, answer))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

        return handle

    async def _answer(self, name: str, request: Request, decoder: msgspec.json.Decoder[Any],
                      answer: Callable[[Any], Awaitable[Any]]) -> None:
        try:
            query = decoder.decode(request.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            await request.respond_error("400", f"bad {name} request: {exc}")
            return
        try:
            await self._caught_up(query.min_seq)
            reply = await answer(query)
        except queries.BadQuery as exc:
            await request.respond_error("400", str(exc))
            return
        except Exception as exc:
            log.warning("history %s query failed: %s: %s", name, type(exc).__name__, exc)
            await request.respond_error("503", f"the history database failed ({type(exc).__name__}: {exc})")
            return
        await request.respond(encoder.encode(reply))

    async def _caught_up(self, min_seq: int) -> None:
        """Wait (bounded) until the job stream is applied up to `min_seq`: read-your-writes for a
        gateway that has seen an event the store may still be writing."""
        wait = self._settings.min_seq_wait_s
        if min_seq <= self._watermark.seq or wait <= 0:
            return
        if self._store.is_writer:
            await self._watermark.wait_for(min_seq, wait)
            return
        # Standing by: the writer is another process; read its progress from the database.
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            applied = await self._store.read(queries.applied_seq)
            self._watermark.advance(applied)
            if applied >= min_seq:
                return
            await asyncio.sleep(0.05)  # another process's progress: there is nothing to wait on here
