"""The logsink service: `run(settings, stop)` persists the log stream until `stop` is set."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from jobline.runtime.connection import connect, instance_name
from jobline.runtime.log_shipping import ship_logs
from jobline.runtime.stream_setup import ensure_streams

from .history import serve_history
from .settings import LogsinkSettings
from .sink import consume
from .store import LogStore

log = logging.getLogger(__name__)
SERVICE = "logsink"


async def run(settings: LogsinkSettings, stop: asyncio.Event) -> None:
    instance = instance_name(SERVICE)
    store = LogStore(settings.database)
    log.info("log store at %s", settings.database)
    nc = await connect(settings.nats_servers, instance)
    try:
        js = nc.jetstream()
        await ensure_streams(js, settings.names, settings.retention)
        async with ship_logs(nc, settings.names, SERVICE, instance):
            sub = await serve_history(nc, settings.names, store)
            try:
                await consume(js, settings, store, stop)
            finally:
                await sub.unsubscribe()
    finally:
        with contextlib.suppress(Exception):
            await nc.drain()
        store.close()
