"""The processor service: `run(settings, stop)` runs until `stop` is set, then drains."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from jobline.runtime.connection import close_connection, connect, instance_name
from jobline.runtime.lifecycle import Stopped, until_stopped
from jobline.runtime.log_shipping import ship_logs
from jobline.runtime.ops_http import serve_ops
from jobline.runtime.stream_setup import ensure_streams

from .metrics import ProcessorMetrics
from .objects import Objects
from .presence import Presence
from .registry import Registry, TaskModuleError, default_registry, load_task_modules
from .settings import ProcessorSettings
from .type_catalogue import advertise
from .worker import Worker

log = logging.getLogger(__name__)
SERVICE = "processor"


async def run(settings: ProcessorSettings, stop: asyncio.Event, registry: Registry | None = None) -> None:
    if registry is None:
        try:
            load_task_modules(settings.task_modules)
        except TaskModuleError as exc:
            log.error("%s", exc)  # a clear line for the launcher's output, then a non-zero exit
            raise SystemExit(2) from None
        registry = default_registry
    instance = instance_name(SERVICE)
    try:
        async with contextlib.AsyncExitStack() as stack:
            nc = await until_stopped(stop, connect(settings.nats_servers, instance, settings.nats_credentials))
            stack.push_async_callback(close_connection, nc)
            js = nc.jetstream()
            metrics = ProcessorMetrics()
            await until_stopped(stop, ensure_streams(js, settings.names, settings.retention))
            await stack.enter_async_context(ship_logs(nc, settings.names, SERVICE, instance))
            objects = await until_stopped(stop, Objects.open(js, settings.names, settings.retention.replicas))
            worker = Worker(nc, js, settings, registry, instance, objects, metrics)
            await until_stopped(stop, worker.start())
            await until_stopped(stop, advertise(js, settings.names, registry, worker.served_types(),
                                                settings.retention.replicas, settings.default_timeout_s))
            await stack.enter_async_context(Presence.running(nc, js, settings, worker, instance))
            await stack.enter_async_context(serve_ops(settings.ops_host, settings.ops_port, metrics.registry,
                                                      ready=lambda: nc.is_connected and not stop.is_set()))
            await worker.run(stop)
            log.info("processor stopped after %d job(s)", worker.jobs_done)
    except Stopped:
        log.info("told to stop while starting")
