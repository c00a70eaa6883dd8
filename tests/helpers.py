"""Running the services for real in tests, and waiting on what they do."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import aconnect_sse
from nats.js import JetStreamContext

from jobline.conductor import service as conductor_service
from jobline.conductor.settings import ConductorSettings, WebhookSettings
from jobline.contract.names import Names
from jobline.contract.streams import RetentionSettings, types_bucket_config
from jobline.gateway.app import Wired
from jobline.gateway.service import GatewayServer
from jobline.gateway.settings import GatewaySettings
from jobline.history import service as history_service
from jobline.history.settings import HistorySettings
from jobline.logsink import service as logsink_service
from jobline.logsink.settings import LogsinkSettings
from jobline.processor import service as processor_service
from jobline.processor.registry import Registry, default_registry, load_task_modules
from jobline.processor.settings import ProcessorSettings
from jobline.runtime.buckets import key_value

# Streams reserve their max_bytes on the server: tests create many, so keep them small.
TEST_RETENTION = RetentionSettings(jobs_max_bytes=32 << 20, logs_max_bytes=32 << 20)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0, what: str = "condition") -> None:
    """For state in another process that announces nothing: re-check with backoff, bounded."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.2)


async def wait_for_job_type(js: JetStreamContext, names: Names, job_type: str, timeout: float = 10.0) -> None:
    """Event-driven: watch the types bucket until a processor has advertised `job_type`."""
    kv = await key_value(js, types_bucket_config(names, replicas=1))
    watcher = await kv.watch(job_type)
    try:
        async with asyncio.timeout(timeout):
            async for entry in watcher:
                if entry is not None and entry.value:
                    return
    finally:
        await watcher.stop()


async def wait_for_history(js: JetStreamContext, names: Names, timeout: float = 15.0) -> None:
    """Until a history service answers on `names` (its status endpoint)."""
    nc = js._nc  # the test's own connection

    async def answers() -> bool:
        try:
            reply = await nc.request(names.history_rpc("status"), b"{}", timeout=1.0)
        except Exception:
            return False
        return not (reply.headers or {}).get("Nats-Service-Error-Code")

    await eventually(answers, timeout, "the history service to answer")


async def wait_for_history_seq(js: JetStreamContext, names: Names, seq: int, timeout: float = 15.0) -> None:
    """Until the history service has applied the job stream up to `seq`: its `min_seq` makes it
    answer only then (or when its own bounded wait ends, which this re-asks after)."""
    import json

    nc = js._nc

    async def applied() -> bool:
        reply = await nc.request(names.history_rpc("status"), json.dumps({"min_seq": seq}).encode(), timeout=5.0)
        return bool(json.loads(reply.data)["applied_seq"] >= seq)

    await eventually(applied, timeout, f"the history service to apply sequence {seq}")


@dataclass
class Stack:
    url: str
    names: Names
    gateway: GatewayServer
    processor_settings: ProcessorSettings
    logsink_settings: LogsinkSettings
    history_settings: HistorySettings
    conductor_settings: ConductorSettings
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)


def conductor_settings(gateway: GatewaySettings, common: dict[str, Any], options: dict[str, Any]) -> ConductorSettings:
    """The conductor beside a gateway: the same webhook secrets and bounds (it signs what the gateway
    admitted), and a test's own `conductor` options (`webhooks` a dict of WebhookSettings)."""
    options = dict(options)
    webhooks = WebhookSettings(secrets=gateway.webhook_secrets, allow=gateway.webhook_allow, **options.pop("webhooks", {}))
    return replace(ConductorSettings(ops_port=0, webhooks=webhooks, schedule_catchup_s=gateway.schedule_catchup_s,
                                     max_timeout_s=gateway.max_timeout_s, max_attempts=gateway.max_attempts, **common),
                   **options)


def builtin_registry() -> Registry:
    load_task_modules(())
    return default_registry


@contextlib.asynccontextmanager
async def running_stack(
    nats_url: str,
    names: Names,
    data_dir: Path,
    js: JetStreamContext,
    *,
    registry: Registry | None = None,
    processor: dict[str, Any] | None = None,
    gateway: dict[str, Any] | None = None,
    with_logsink: bool = True,
    with_history: bool = True,
    history: dict[str, Any] | None = None,
    with_conductor: bool = True,
    conductor: dict[str, Any] | None = None,
    retention: RetentionSettings = TEST_RETENTION,
) -> AsyncIterator[Stack]:
    """Gateway, processor, logsink and history as tasks in this loop (real NATS, real uvicorn on
    port 0). The history service is up (answering) before the gateway starts, as under `jobline up`."""
    servers = [nats_url]
    common: dict[str, Any] = {"nats_servers": servers, "names": names, "retention": retention}
    psettings = replace(ProcessorSettings(data_dir=data_dir, ops_port=0, **common), **(processor or {}))
    lsettings = LogsinkSettings(data_dir=data_dir, ops_port=0, **common)
    hsettings = replace(HistorySettings(data_dir=data_dir, ops_port=0, **common), **(history or {}))
    gateway_defaults: dict[str, Any] = {} if with_history else {"history_start_wait_s": 0.0}
    gsettings = replace(GatewaySettings(port=0, **common), **{**gateway_defaults, **(gateway or {})})
    csettings = conductor_settings(gsettings, common, conductor or {})
    registry = registry or builtin_registry()
    stop = asyncio.Event()
    tasks: list[asyncio.Task[Any]] = []
    if with_logsink:
        tasks.append(asyncio.create_task(logsink_service.run(lsettings, stop), name="logsink"))
    if with_history:
        tasks.append(asyncio.create_task(history_service.run(hsettings, stop), name="history"))
    tasks.append(asyncio.create_task(processor_service.run(psettings, stop, registry), name="processor"))
    if with_conductor:
        tasks.append(asyncio.create_task(conductor_service.run(csettings, stop), name="conductor"))
    server = GatewayServer(gsettings)
    started = asyncio.Event()
    try:
        async with asyncio.timeout(20):
            if with_history:
                await wait_for_history(js, names)
            tasks.append(asyncio.create_task(server.serve(stop, started), name="gateway"))
            for job_type in psettings.job_types or registry.names():
                await wait_for_job_type(js, names, job_type)
            started_wait = asyncio.create_task(started.wait())
            done, _ = await asyncio.wait([started_wait, *tasks], return_when=asyncio.FIRST_COMPLETED)
            if started_wait not in done:
                for task in done:
                    task.result()  # raises the service's error
        yield Stack(url=server.url, names=names, gateway=server, processor_settings=psettings,
                    logsink_settings=lsettings, history_settings=hsettings, conductor_settings=csettings, tasks=tasks)
    finally:
        stop.set()
        await stopped_within(tasks, STOP_BOUND_S)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)]
        if errors:
            raise errors[0]


STOP_BOUND_S = 45.0  # every service bounds its own stop well below this (drains: 5 s; the gateway's connections)


async def stopped_within(tasks: list[asyncio.Task[Any]], bound: float) -> None:
    """Fail naming the service that did not stop, with where it waits (pytest-timeout's dump shows
    only the event loop's select), instead of hanging the test until the suite's timeout."""
    _, pending = await asyncio.wait(tasks, timeout=bound)
    if not pending:
        return
    where = [f"{task.get_name()}: {awaiting(task.get_coro())}" for task in pending]
    for task in pending:
        task.cancel()
    await asyncio.wait(pending, timeout=5)
    raise AssertionError(f"not stopped {bound:g}s after being told to:\n" + "\n".join(where))


def awaiting(coro: Any) -> str:
    """The chain of awaits a suspended coroutine is in (Task.get_stack gives only its first frame)."""
    steps = []
    while coro is not None and getattr(coro, "cr_frame", None) is not None:
        frame = coro.cr_frame
        steps.append(f"{frame.f_code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno} {frame.f_code.co_name}")
        coro = coro.cr_await
    if coro is not None:
        steps.append(repr(coro)[:200])
    return " -> ".join(steps)


@contextlib.asynccontextmanager
async def another_conductor(stack: Stack, **overrides: Any) -> AsyncIterator[None]:
    """A second conductor beside the stack's (the background roles shared by two replicas)."""
    stop = asyncio.Event()
    task = asyncio.create_task(conductor_service.run(replace(stack.conductor_settings, **overrides), stop))
    try:
        yield
    finally:
        stop.set()
        await task


async def submit(client: httpx.AsyncClient, job_type: str, params: dict[str, Any] | None = None) -> str:
    response = await client.post("/api/jobs", json={"type": job_type, "params": params or {}})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


@dataclass
class SseEvent:
    event: str
    data: str
    id: str | None


async def read_sse(client: httpx.AsyncClient, path: str, timeout: float = 20.0,
                   headers: dict[str, str] | None = None, method: str = "GET") -> list[SseEvent]:
    """Every event until the server ends the stream."""
    events: list[SseEvent] = []
    async with asyncio.timeout(timeout):
        async with aconnect_sse(client, method, path, headers=dict(headers or {})) as source:
            if source.response.status_code != 200:
                await source.response.aread()
                raise AssertionError(f"{method} {path}: {source.response.status_code} {source.response.text}")
            async for sse in source.aiter_sse():
                if sse.event == "message" and not sse.data:
                    continue  # a comment/retry-only block: browsers dispatch nothing for it
                events.append(SseEvent(event=sse.event, data=sse.data, id=sse.id or None))
    return events


def outcome(events: list[SseEvent]) -> str:
    """How the streamed job ended: the terminal event, or (if it ended before the client
    connected) the status in the snapshot."""
    import json

    last = events[-1]
    return str(json.loads(last.data)["job"]["status"]) if last.event == "snapshot" else last.event


@contextlib.asynccontextmanager
async def another_gateway(stack: Stack, **overrides: Any) -> AsyncIterator[tuple[str, Wired]]:
    """A second gateway on the same system, started now (its URL and its core)."""
    server = GatewayServer(replace(stack.gateway.settings, port=0, **overrides))
    stop, started = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(server.serve(stop, started))
    try:
        async with asyncio.timeout(30):
            waiter = asyncio.create_task(started.wait())
            await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
            if not started.is_set():
                task.result()
        yield server.url, server.server.config.app.state.wired
    finally:
        stop.set()
        await task
