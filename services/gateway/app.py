"""The gateway's Litestar application: one factory; NATS and what is built on it wired in through
the lifespan, and handed to each handler by name (Litestar's dependency injection: a handler
declares `writer: JobWriter`, `live: Live`, …). The gateway serves HTTP, keeps the read model and
the live streams; the background roles (flows, schedule ticks, webhooks) are the conductor's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from typing import Any

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.static_files import create_static_files_router

from jobline.contract.batches import BatchRecord, batches_bucket_config
from jobline.contract.flows import FlowRecord, flows_bucket_config
from jobline.contract.operations import operations_bucket_config
from jobline.contract.queues import QueueControls, queue_controls_bucket_config
from jobline.jobs.alerts import AlertRules
from jobline.jobs.bands import Bands
from jobline.jobs.catalogue import Catalogue
from jobline.jobs.checks import JobChecks, JobLimits
from jobline.jobs.history_client import HistoryClient, HistoryUnavailable
from jobline.jobs.idempotency import open_bucket as open_idempotency
from jobline.jobs.operations import Operations
from jobline.jobs.reader import JobReader
from jobline.jobs.schedules import ScheduleStore
from jobline.jobs.unique import bucket_config as unique_bucket_config
from jobline.jobs.workers import Workers
from jobline.jobs.writer import JobWriter
from jobline.runtime import tracing
from jobline.runtime.buckets import key_value
from jobline.runtime.connection import close_connection, connect, instance_name
from jobline.runtime.kv_records import KvRecords
from jobline.runtime.log_shipping import ship_logs
from jobline.runtime.stream_setup import ensure_stream, ensure_streams

from .alerts.routes import alert_handlers
from .batches.routes import batch_handlers
from .batches.service import Batches
from .flows.routes import flow_handlers
from .flows.service import Flows
from .http import owner_rates
from .http.access import access_handlers
from .http.auth import Auth, auth_middleware
from .http.guard import allowed_hosts, request_guard
from .http.head import serve_head
from .http.openapi import DescribedJson
from .http.ops import Readiness, ops_handlers
from .http.problems import exception_handlers
from .http.responses import response_middleware
from .jobs.files import file_handlers
from .jobs.forms import route_forms
from .jobs.objects import ObjectStores
from .jobs.routes import job_handlers
from .jobs.signal_routes import signal_handlers
from .live.event_stream import StreamWatchdog
from .live.feed import JobFeed
from .live.hub import Hub
from .live.log_client import LogClient
from .live.read_model import ReadModel
from .live.routes import stream_handlers
from .live.streams import Live
from .live.websocket import ws_endpoint
from .metrics import GatewayMetrics
from .operations.routes import operation_handlers
from .queues.routes import queue_handlers
from .queues.store import QueueStore
from .schedules.routes import schedule_handlers
from .settings import GatewaySettings
from .workers.routes import worker_handlers

log = logging.getLogger(__name__)
SERVICE = "gateway"


@dataclass
class Wired:
    """What the lifespan builds, each handed to the handlers that name it (built before the first
    request; it lives as long as the app, which keeps it as `state.wired`)."""

    writer: JobWriter
    reader: JobReader
    checks: JobChecks
    catalogue: Catalogue
    history: HistoryClient
    read_model: ReadModel
    live: Live
    watchdog: StreamWatchdog
    objects: ObjectStores
    batches: Batches
    flows: Flows
    schedules: ScheduleStore
    queues: QueueStore
    workers: Workers
    alerts: AlertRules
    operations: Operations
    readiness: Readiness
    metrics: GatewayMetrics


async def load_live_window(history: HistoryClient, read_model: ReadModel, settings: GatewaySettings) -> None:
    """Start from the history service's live window (the recent jobs and every one not ended):
    then the feed reads only what happened since, however long the history. With no history
    service (or none yet), the feed rebuilds the window from the whole job stream instead."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + settings.history_start_wait_s
    while True:
        try:
            states, applied = await history.window(settings.recent_jobs)
        except HistoryUnavailable as exc:
            if loop.time() >= give_up:
                log.warning("no history service answered (%s); reading the live window from the job stream", exc)
                return
            await asyncio.sleep(0.2)  # the history service may be starting beside us (jobline up, compose)
            continue
        read_model.load(states, applied)
        log.info("live window from the history service: %d jobs, the job stream applied up to %d", len(states), applied)
        return


def job_limits(settings: GatewaySettings) -> JobLimits:
    return JobLimits(max_timeout_s=settings.max_timeout_s, max_attempts=settings.max_attempts,
                     max_delay_s=settings.effective_max_delay_s, webhook_secrets=settings.webhook_secrets,
                     webhook_allow=settings.webhook_allow)


def create_app(settings: GatewaySettings) -> Litestar:
    metrics = GatewayMetrics()
    auth = Auth(tokens=settings.api_tokens, max_streams=settings.max_streams_per_client,
                submit_rate=settings.submit_rate, form_token_ttl_s=settings.form_token_ttl_s)
    if not auth.enabled:
        exposed = settings.host not in ("127.0.0.1", "localhost", "::1")
        (log.warning if exposed else log.info)(
            "no API tokens (JOBLINE_API_TOKENS): anyone who can reach %s:%s can use the API%s", settings.host,
            settings.port, "; set tokens before exposing it" if exposed else " (loopback only)")
    wired: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def nats_lifespan(app: Litestar) -> AsyncIterator[None]:
        # Everything started is stopped in reverse order, also when a later start step fails.
        async with contextlib.AsyncExitStack() as stack:
            names, replicas = settings.names, settings.retention.replicas
            instance = instance_name(SERVICE)
            nc = await connect(settings.nats_servers, instance, settings.nats_credentials)
            stack.push_async_callback(close_connection, nc)
            js = nc.jetstream()
            await ensure_streams(js, names, settings.retention)
            if auth.enabled and settings.submit_rate > 0:  # (owners' submit rate, counted by the broker)
                await ensure_stream(js, owner_rates.stream_config(names, settings.submit_rate, replicas))
                auth.owner_rates = owner_rates.OwnerRates(js, names)
            await stack.enter_async_context(ship_logs(nc, names, SERVICE, instance))
            catalogue = Catalogue()
            stack.push_async_callback(catalogue.stop)
            await catalogue.start(js, names, replicas)
            hub = Hub(settings.stream_buffer, settings.heartbeat_s, on_dropped=metrics.slow_clients.inc)
            hub.start()
            stack.callback(hub.stop)
            watchdog = StreamWatchdog(settings.sse_send_timeout_s)
            watchdog.start()
            stack.callback(watchdog.stop)
            read_model = ReadModel(settings.recent_jobs)
            history = HistoryClient(nc, names, settings.history_timeout_s)
            reader = JobReader(js, names, history, read_model, settings.catch_up_timeout_s)
            controls = await key_value(js, queue_controls_bucket_config(names, replicas))
            checks = JobChecks(catalogue, job_limits(settings))
            writer = JobWriter(nc, js, names, checks, await open_idempotency(js, names, settings.idempotency_ttl_s, replicas),
                               Bands(js, names, controls), reader, on_stored=metrics.count_submitted,
                               unique=await key_value(js, unique_bucket_config(names.unique_bucket, replicas)),
                               tracer=tracing.tracer(SERVICE))
            live = Live(read_model, hub, reader, LogClient(nc, names), js, names, watchdog, settings.sse_retry_ms,
                        settings.snapshot_log_lines, settings.max_wait_s)
            await load_live_window(history, read_model, settings)
            feed = JobFeed(nc, js, names, read_model, hub)
            stack.push_async_callback(feed.stop)
            await feed.start(catch_up_timeout=600.0)
            workers = Workers(nc, names)
            stack.push_async_callback(workers.stop)
            await workers.start(js, replicas)
            readiness = Readiness(nc)
            app.state.wired = built = Wired(
                writer=writer, reader=reader, checks=checks, catalogue=catalogue, history=history,
                read_model=read_model, live=live, watchdog=watchdog,
                objects=await ObjectStores.open(js, names, replicas),
                batches=Batches(js, names, KvRecords(await key_value(js, batches_bucket_config(names, replicas)),
                                                     BatchRecord), writer, read_model),
                flows=Flows(KvRecords(await key_value(js, flows_bucket_config(names, replicas)), FlowRecord), writer),
                schedules=await ScheduleStore.open(js, names, replicas, settings.schedule_catchup_s),
                queues=QueueStore(js, names, KvRecords(controls, QueueControls), catalogue, replicas, workers.serving),
                workers=workers, alerts=await AlertRules.open(js, names, replicas, checks),
                operations=Operations(js, names, await key_value(
                    js, operations_bucket_config(names, replicas, settings.retention.jobs_max_age_s))),
                readiness=readiness, metrics=metrics)
            wired.update(vars(built))
            app.state.catalogue = catalogue  # (the OpenAPI document names the served types)
            readiness.started = True
            stack.callback(setattr, readiness, "started", False)
            yield

    def provided(name: str) -> Provide:
        def give() -> Any:
            return wired[name]

        return Provide(give, use_cache=True, sync_to_thread=False)

    dependencies = {f.name: provided(f.name) for f in fields(Wired)}
    dependencies |= {"settings": Provide(lambda: settings, use_cache=True, sync_to_thread=False),
                     "auth": Provide(lambda: auth, use_cache=True, sync_to_thread=False)}
    handlers: list[Any] = [ws_endpoint, *access_handlers, *ops_handlers, *job_handlers, *file_handlers,
                           *stream_handlers, *schedule_handlers, *queue_handlers, *batch_handlers, *flow_handlers,
                           *worker_handlers, *alert_handlers, *signal_handlers, *operation_handlers]
    if settings.web_dir.is_dir():
        handlers.append(create_static_files_router(path="/", directories=[settings.web_dir], html_mode=True,
                                                   include_in_schema=False))
    else:
        log.warning("web UI folder %s not found; serving the API only", settings.web_dir)
    app = Litestar(
        route_handlers=handlers,
        dependencies=dependencies,
        lifespan=[nats_lifespan],
        exception_handlers=exception_handlers,  # type: ignore[arg-type]
        middleware=[response_middleware(metrics, cors=bool(settings.cors_origins)),
                    request_guard(allowed_hosts(settings.host, settings.allowed_hosts), settings.cors_origins),
                    auth_middleware(auth)],
        cors_config=CORSConfig(allow_origins=list(settings.cors_origins), allow_credentials=True,
                               allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID", "Prefer"],
                               expose_headers=["Location", "ETag", "Retry-After", "Content-Range",
                                               "Idempotent-Replayed", "Preference-Applied"]) if settings.cors_origins else None,
        # JSON only (the HTML viewers load their scripts from CDNs), completed by http/openapi.py.
        openapi_config=OpenAPIConfig(title="Jobline", version="0.1.0", path="/schema", render_plugins=[DescribedJson()]),
        logging_config=None,  # the process configures logging (runtime.lifecycle)
    )
    app.state.settings = settings
    app.state.auth = auth
    app.asgi_handler = serve_head(route_forms(app.asgi_handler))
    return app
