"""The logsink service: `run(settings, stop)` persists the log stream until `stop` is set."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from jobline.runtime.connection import close_connection, connect, instance_name
from jobline.runtime.consume import consumer_lag
from jobline.runtime.lifecycle import Stopped, until_stopped
from jobline.runtime.log_shipping import ship_logs
from jobline.runtime.ops_http import serve_ops
from jobline.runtime.stream_setup import ensure_streams

from .history import serve_history
from .metrics import LogsinkMetrics
from .settings import LogsinkSettings
from .sink import consume
from .store import LogStore

log = logging.getLogger(__name__)
SERVICE = "logsink"


async def run(settings: LogsinkSettings, stop: asyncio.Event) -> None:
    instance = instance_name(SERVICE)
    store = LogStore(settings.database)
    log.info("log store at %s", settings.database)
    try:
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(store.close)
            nc = await until_stopped(stop, connect(settings.nats_servers, instance, settings.nats_credentials))
            stack.push_async_callback(close_connection, nc)
            js = nc.jetstream()
            await until_stopped(stop, ensure_streams(js, settings.names, settings.retention))
            metrics = LogsinkMetrics()

            async def measure_lag() -> None:
                metrics.lag.set(await consumer_lag(js, settings.names.logs_stream, settings.names.logsink_durable))

            await stack.enter_async_context(ship_logs(nc, settings.names, SERVICE, instance))
            sub = await serve_history(nc, settings.names, store)
            stack.push_async_callback(sub.unsubscribe)
            await stack.enter_async_context(serve_ops(settings.ops_host, settings.ops_port, metrics.registry,
                                                      ready=lambda: nc.is_connected and not stop.is_set(),
                                                      before_scrape=measure_lag))
            await consume(js, settings, store, stop, metrics)
    except Stopped:
        log.info("told to stop while starting")
