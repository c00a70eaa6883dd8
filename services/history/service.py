"""The history service: `run(settings, stop)` keeps the history database up to date with the job
stream and answers queries about it until `stop` is set.

Several instances may run against one PostgreSQL database: one writes (it holds the writer lock),
the others stand by and answer queries, and one of them takes over when the writer goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.aio.client import Client
from nats.js import JetStreamContext

from jobline.runtime.connection import close_connection, connect, instance_name
from jobline.runtime.consume import consumer_lag
from jobline.runtime.lifecycle import Stopped, until_stopped
from jobline.runtime.log_shipping import ship_logs
from jobline.runtime.ops_http import serve_ops
from jobline.runtime.stream_setup import ensure_streams
from jobline.runtime.watermark import Watermark

from .database import Database
from .ingest import Ingest
from .metrics import HistoryMetrics
from .rpc import QueryService
from .settings import HistorySettings
from .store import HistoryStore, is_transient

log = logging.getLogger(__name__)
SERVICE = "history"
STANDBY_RETRY_S = 2.0


async def _until(stop: asyncio.Event, seconds: float) -> None:
    """Sleep that ends early when the service is told to stop."""
    try:
        async with asyncio.timeout(seconds):
            await stop.wait()
    except TimeoutError:
        pass


async def _migrate(store: HistoryStore, stop: asyncio.Event) -> bool:
    """Bring the schema up to date, waiting (with backoff) while the database is away."""
    delay = 0.5
    while not stop.is_set():
        try:
            version = await store.migrate()
            log.info("history database ready (%s, schema version %d)", store.db.backend, version)
            return True
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("history database unavailable (%s); retrying in %.0fs", exc, delay)
            await _until(stop, delay)
            delay = min(delay * 2, 10.0)
    return False


async def run(settings: HistorySettings, stop: asyncio.Event) -> None:
    instance = instance_name(SERVICE)
    database = Database(settings.database)
    store = HistoryStore(database, readers=settings.readers, state_cache=settings.state_cache)
    log.info("history database at %s", database.redacted_url)
    try:
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(store.close)
            nc = await until_stopped(stop, connect(settings.nats_servers, instance, settings.nats_credentials))
            stack.push_async_callback(close_connection, nc)
            js = nc.jetstream()
            await until_stopped(stop, ensure_streams(js, settings.names, settings.retention))
            metrics = HistoryMetrics()
            watermark = Watermark()

            async def measure_lag() -> None:
                metrics.lag.set(await consumer_lag(js, settings.names.jobs_stream, settings.names.history_durable))

            await stack.enter_async_context(ship_logs(nc, settings.names, SERVICE, instance))
            if not await _migrate(store, stop):
                return
            query_service = QueryService(nc, settings, store, watermark)
            stack.push_async_callback(query_service.stop)
            await query_service.start()
            await stack.enter_async_context(serve_ops(settings.ops_host, settings.ops_port, metrics.registry,
                                                      ready=lambda: nc.is_connected and not stop.is_set(),
                                                      before_scrape=measure_lag))
            await _write_or_stand_by(nc, js, settings, store, watermark, metrics, stop)
    except Stopped:
        log.info("told to stop while starting")


async def _write_or_stand_by(nc: Client, js: JetStreamContext, settings: HistorySettings, store: HistoryStore,
                             watermark: Watermark, metrics: HistoryMetrics, stop: asyncio.Event) -> None:
    ingest = Ingest(nc, js, settings, store, watermark, metrics)
    said_standby = False
    while not stop.is_set():
        try:
            writer = await store.become_writer()
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("history database unavailable (%s); retrying", exc)
            await _until(stop, STANDBY_RETRY_S)
            continue
        if not writer:
            if not said_standby:
                log.info("another history service writes to this database; standing by (answering queries)")
                said_standby = True
            await _until(stop, STANDBY_RETRY_S)
            continue
        said_standby = False
        metrics.writer.set(1)
        watermark.advance(store.applied_seq)
        log.info("writing the job history (applied up to sequence %d)", store.applied_seq)
        try:
            await ingest.run(stop)
        finally:
            metrics.writer.set(0)
