"""The logsink service: `run(settings, stop)` persists the log stream until `stop` is set."""

from __future__ import annotations

import asyncio
import logging

from jobline.runtime.connection import close_connection, connect, instance_name
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
    nc = await connect(settings.nats_servers, instance, settings.nats_credentials)
    try:
        js = nc.jetstream()
        await ensure_streams(js, settings.names, settings.retention)
        metrics = LogsinkMetrics()

        async def measure_lag() -> None:
            info = await js.consumer_info(settings.names.logs_stream, settings.names.logsink_durable)
            metrics.lag.set((info.num_pending or 0) + (info.num_ack_pending or 0))

        async with ship_logs(nc, settings.names, SERVICE, instance):
            sub = await serve_history(nc, settings.names, store)
            try:
                async with serve_ops(settings.ops_host, settings.ops_port, metrics.registry,
                                     ready=lambda: nc.is_connected and not stop.is_set(), before_scrape=measure_lag):
                    await consume(js, settings, store, stop, metrics)
            finally:
                await sub.unsubscribe()
    finally:
        await close_connection(nc)
        store.close()
