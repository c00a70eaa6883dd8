"""The gateway's Litestar application: one factory, NATS wired in through the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Iterable
from typing import Any

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.enums import ScopeType
from litestar.openapi import OpenAPIConfig
from litestar.static_files import create_static_files_router
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from jobline.runtime.connection import close_connection, connect, instance_name
from jobline.runtime.log_shipping import ship_logs
from jobline.runtime.stream_setup import ensure_streams

from .auth import Auth, auth_middleware
from .batch_routes import batch_handlers
from .batches import open_bucket as open_batches
from .catalogue import Catalogue
from .core import Core
from .event_stream import StreamWatchdog
from .feed import JobFeed
from .flow_routes import flow_handlers
from .flow_runner import FlowRunner
from .flows import open_bucket as open_flows
from .forms import route_forms
from .head import serve_head
from .history import HistoryClient, HistoryUnavailable
from .hub import Hub
from .idempotency import open_bucket as open_idempotency
from .metrics import GatewayMetrics
from .objects import ObjectStores
from .openapi import DescribedJson
from .problems import exception_handlers
from .queue_routes import queue_handlers
from .queues import QueueStore
from .read_model import ReadModel
from .request_guard import allowed_hosts, request_guard
from .routes import route_handlers
from .schedule_routes import schedule_handlers
from .schedule_runner import ScheduleRunner
from .schedules import ScheduleStore
from .settings import GatewaySettings
from .webhooks import WebhookDispatcher

log = logging.getLogger(__name__)
SERVICE = "gateway"

# The web UI loads only its own files: no inline script or style, no third-party origin.
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
                                 b"media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
                                 b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


_TYPED_PARAMETER = re.compile(r"\{(\w+):[^}]+\}")


def allow_every_method(scope: Scope, headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The `Allow` of an OPTIONS answer, listing every method of the path. (Litestar's automatic
    OPTIONS handler lists only the methods of the handlers registered before it was made — a
    path registered one handler at a time, like /api/jobs with POST and then GET, got `OPTIONS,
    POST`.)"""
    headers = list(headers)
    app, template = scope.get("litestar_app"), scope.get("path_template")
    if app is None or template is None or not any(k.lower() == b"allow" for k, _ in headers):
        return headers
    methods = next((sorted(route.methods) for route in app.routes
                    if _TYPED_PARAMETER.sub(r"{\1}", route.path) == template and hasattr(route, "methods")), None)
    if methods is None:
        return headers
    return [(k, v) for k, v in headers if k.lower() != b"allow"] + [(b"allow", ", ".join(methods).encode())]


def with_vary_origin(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`Vary: Origin` added (or merged into the Vary there is): with CORS origins, what a response
    carries depends on the request's Origin, so no cache may hand one origin's answer to another."""
    headers = list(headers)
    for index, (key, value) in enumerate(headers):
        if key.lower() == b"vary":
            if b"origin" not in value.lower():
                headers[index] = (key, value + b", Origin")
            return headers
    return [*headers, (b"vary", b"Origin")]


def response_middleware(metrics: GatewayMetrics, cors: bool = False) -> Any:
    """Security headers on every response (and `Vary: Origin` with CORS origins), and a count of
    responses by route and status: one wrapper around `send`, since every frame of a live stream
    passes through it."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            status = 500

            async def send_with_headers(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
                    if cors:
                        message["headers"] = with_vary_origin(message["headers"])
                    if scope["method"] == "OPTIONS":
                        message["headers"] = allow_every_method(scope, message["headers"])
                await send(message)

            try:
                await app(scope, receive, send_with_headers)
            finally:
                metrics.count_request(scope, status)

        return wrapped

    return middleware


async def load_live_window(core: Core) -> None:
    """Start from the history service's live window (the recent jobs and every one not ended):
    then the feed reads only what happened since, however long the history. With no history
    service (or none yet), the feed rebuilds the window from the whole job stream instead."""
    settings = core.settings
    loop = asyncio.get_running_loop()
    give_up = loop.time() + settings.history_start_wait_s
    while True:
        try:
            states, applied = await core.history.window(settings.recent_jobs)
        except HistoryUnavailable as exc:
            if loop.time() >= give_up:
                log.warning("no history service answered (%s); reading the live window from the job stream", exc)
                return
            await asyncio.sleep(0.2)  # the history service may be starting beside us (jobline up, compose)
            continue
        core.read_model.load(states, applied)
        log.info("live window from the history service: %d jobs, the job stream applied up to %d", len(states), applied)
        return


def create_app(settings: GatewaySettings) -> Litestar:
    metrics = GatewayMetrics()
    auth = Auth(tokens=settings.api_tokens, max_streams=settings.max_streams_per_client,
                submit_rate=settings.submit_rate, form_token_ttl_s=settings.form_token_ttl_s)
    if not auth.enabled:
        exposed = settings.host not in ("127.0.0.1", "localhost", "::1")
        (log.warning if exposed else log.info)(
            "no API tokens (JOBLINE_API_TOKENS): anyone who can reach %s:%s can use the API%s", settings.host,
            settings.port, "; set tokens before exposing it" if exposed else " (loopback only)")

    @contextlib.asynccontextmanager
    async def nats_lifespan(app: Litestar) -> AsyncIterator[None]:
        # Everything started is stopped in reverse order, also when a later start step fails.
        async with contextlib.AsyncExitStack() as stack:
            instance = instance_name(SERVICE)
            nc = await connect(settings.nats_servers, instance, settings.nats_credentials)
            stack.push_async_callback(close_connection, nc)
            js = nc.jetstream()
            await ensure_streams(js, settings.names, settings.retention)
            await stack.enter_async_context(ship_logs(nc, settings.names, SERVICE, instance))
            catalogue = Catalogue()
            stack.push_async_callback(catalogue.stop)
            await catalogue.start(js, settings.names, settings.retention.replicas)
            idempotency = await open_idempotency(js, settings.names, settings.idempotency_ttl_s,
                                                 settings.retention.replicas)
            objects = await ObjectStores.open(js, settings.names, settings.retention.replicas)
            hub = Hub(settings.stream_buffer, settings.heartbeat_s, on_dropped=metrics.slow_clients.inc)
            hub.start()
            stack.callback(hub.stop)
            watchdog = StreamWatchdog(settings.sse_send_timeout_s)
            watchdog.start()
            stack.callback(watchdog.stop)
            core = Core(settings=settings, nc=nc, js=js, read_model=ReadModel(settings.recent_jobs), hub=hub,
                        catalogue=catalogue, idempotency=idempotency, objects=objects, metrics=metrics,
                        watchdog=watchdog, history=HistoryClient(nc, settings.names, settings.history_timeout_s))
            app.state.core = core
            app.state.auth = auth
            await load_live_window(core)
            feed = JobFeed(nc, js, settings.names, core.read_model, core.hub)
            stack.push_async_callback(feed.stop)
            await feed.start(catch_up_timeout=600.0)
            core.schedules = await ScheduleStore.open(js, settings.names, settings.retention.replicas,
                                                      settings.schedule_catchup_s)
            core.queues = await QueueStore.open(js, settings.names, catalogue, settings.retention.replicas)
            core.batches = await open_batches(js, settings.names, settings.retention.replicas)
            core.flows = await open_flows(js, settings.names, settings.retention.replicas)
            flow_runner = FlowRunner(core, core.flows)
            stack.push_async_callback(flow_runner.stop)
            await flow_runner.start()
            runner = ScheduleRunner(core, core.schedules)
            stack.push_async_callback(runner.stop)
            await runner.start()
            if settings.webhook_secrets:
                webhooks = WebhookDispatcher(core)
                stack.push_async_callback(webhooks.stop)
                await webhooks.start()
            core.ready = True
            stack.callback(setattr, core, "ready", False)
            yield

    handlers: list[Any] = [*route_handlers, *schedule_handlers, *queue_handlers, *batch_handlers, *flow_handlers]
    if settings.web_dir.is_dir():
        handlers.append(create_static_files_router(path="/", directories=[settings.web_dir], html_mode=True,
                                                   include_in_schema=False))
    else:
        log.warning("web UI folder %s not found; serving the API only", settings.web_dir)
    app = Litestar(
        route_handlers=handlers,
        lifespan=[nats_lifespan],
        exception_handlers=exception_handlers,  # type: ignore[arg-type]
        middleware=[response_middleware(metrics, cors=bool(settings.cors_origins)),
                    request_guard(allowed_hosts(settings.host, settings.allowed_hosts), settings.cors_origins),
                    auth_middleware(auth)],
        cors_config=CORSConfig(allow_origins=list(settings.cors_origins), allow_credentials=True,
                               allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID"],
                               expose_headers=["Location", "ETag", "Retry-After", "Content-Range",
                                               "Idempotent-Replayed"]) if settings.cors_origins else None,
        # JSON only (the HTML viewers load their scripts from CDNs), completed by openapi.describe.
        openapi_config=OpenAPIConfig(title="Jobline", version="0.1.0", path="/schema", render_plugins=[DescribedJson()]),
        logging_config=None,  # the process configures logging (runtime.lifecycle)
    )
    app.asgi_handler = serve_head(route_forms(app.asgi_handler))
    return app
