"""Streams under load: the snapshot/live seam at ~1,000 events/s, a frozen client, and connection
churn that must leave nothing behind."""

from __future__ import annotations

import asyncio
import json
import random
import resource
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext

from jobline.gateway.app import Wired
from jobline.processor import JobContext
from jobline.processor.registry import Registry

from .helpers import SseEvent, Stack, eventually, submit
from .oracle import read_timeline

pytestmark = pytest.mark.slow
registry = Registry()


@registry.task("firehose")
async def firehose(ctx: JobContext) -> None:
    """About 1,000 log lines per second for three seconds, some of them large."""
    for i in range(3000):
        ctx.log(f"line {i} " + ("x" * 2000 if ctx.params.get("big") else ""))
        if i % 10 == 9:
            await asyncio.sleep(0.01)


@registry.task("idle")
async def idle(ctx: JobContext) -> None:
    await asyncio.sleep(float(ctx.params.get("seconds", 30)))


# The services this module's tests run against (conftest.py's `stack`).
STACK: dict[str, Any] = dict(registry=registry, with_logsink=False,
                             processor={"concurrency": 4}, gateway={"stream_buffer": 200,
                                                                               "sse_send_timeout_s": 2.0})


def core_of(stack: Stack) -> Wired:
    return stack.gateway.server.config.app.state.wired  # type: ignore[attr-defined, no-any-return]


async def follow(client: httpx.AsyncClient, path: str) -> list[SseEvent]:
    """Like EventSource: when the server cuts the stream before the end (a client too slow for its
    buffer), reconnect with Last-Event-ID and go on."""
    from httpx_sse import aconnect_sse

    events: list[SseEvent] = []
    async with asyncio.timeout(60):
        while True:
            headers = {"Last-Event-ID": events[-1].id} if events and events[-1].id else {}
            async with aconnect_sse(client, "GET", path, headers=headers) as source:
                if source.response.status_code == 204:
                    return events
                async for sse in source.aiter_sse():
                    if sse.event == "message" and not sse.data:
                        continue
                    events.append(SseEvent(sse.event, sse.data, sse.id or None))
            if events and events[-1].event in ("completed", "failed"):
                return events


async def test_clients_joining_at_1000_events_per_second_see_no_gap_or_duplicate_at_the_seam(
    stack: Stack, js: JetStreamContext
) -> None:
    rng = random.Random(3)
    async with httpx.AsyncClient(base_url=stack.url, timeout=60, limits=httpx.Limits(max_connections=50)) as client:
        job_id = await submit(client, "firehose")
        followers = []
        for _ in range(20):
            await asyncio.sleep(rng.uniform(0.0, 0.12))  # join at random moments while it floods
            followers.append(asyncio.create_task(follow(client, f"/api/jobs/{job_id}/events")))
        results = await asyncio.gather(*followers)
    timeline = await read_timeline(js, stack.names, job_id, timeout=30)
    for events in results:
        assert events[0].event == "snapshot"
        start = int(events[0].id or 0)
        snapshot_lines = json.loads(events[0].data)["logs"]
        got = [(int(e.id or 0), e.event) for e in events[1:]]
        assert got == [(r.seq, r.kind) for r in timeline if r.seq > start], "gap or duplicate at the seam"
        assert len(snapshot_lines) == min(500, sum(1 for r in timeline if r.seq <= start and r.kind == "logged"))


async def test_a_frozen_client_is_dropped_without_slowing_the_others(stack: Stack) -> None:
    core = core_of(stack)
    host, port = stack.url.removeprefix("http://").split(":")
    async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
        job_id = await submit(client, "firehose", {"big": True})
        # A client that sends its request and then never reads a byte.
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"GET /api/jobs/{job_id}/events HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        healthy = await follow(client, f"/api/jobs/{job_id}/events")
        assert healthy[-1].event == "completed", "a reading client got every event to the end"

        async def frozen_dropped() -> bool:
            return core.metrics.slow_clients._value.get() >= 1

        await eventually(frozen_dropped, timeout=20, what="the frozen client to be dropped")
        # And its connection is closed (send timeout): reading now drains what was sent, then EOF.
        async with asyncio.timeout(30):
            while await reader.read(1 << 16):
                pass
        writer.close()
        assert core.live.hub.listener_count == 0


async def test_connection_churn_leaves_no_listener_task_or_consumer_behind(stack: Stack, js: JetStreamContext) -> None:
    core = core_of(stack)
    async with httpx.AsyncClient(base_url=stack.url, timeout=30, limits=httpx.Limits(max_connections=20)) as client:
        job_id = await submit(client, "idle", {"seconds": 60})  # cancelled at the end
        await submit(client, "firehose")

        async def one_cycle() -> None:
            async with client.stream("GET", f"/api/jobs/{job_id}/events") as response:
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        return

        await one_cycle()  # warm up
        await eventually(lambda: _settled(core), what="a quiet baseline")
        tasks_before = len(asyncio.all_tasks())
        consumers_before = (await js.stream_info(stack.names.jobs_stream)).state.consumer_count
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for _ in range(500):
            await asyncio.gather(*(one_cycle() for _ in range(20)))  # 10,000 connections in all
        await eventually(lambda: _settled(core), timeout=20, what="every listener to be gone")
        assert len(asyncio.all_tasks()) <= tasks_before + 2

        async def consumers_back() -> bool:  # ordered consumers linger a few seconds after unsubscribe
            now = (await js.stream_info(stack.names.jobs_stream)).state.consumer_count
            return now <= consumers_before

        await eventually(consumers_back, timeout=30, what="the stream's consumers back at their baseline")
        grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
        assert grown_kb < 60_000, f"max RSS grew by {grown_kb} KB over 10,000 connections"
        assert (await client.post(f"/api/jobs/{job_id}/cancel")).status_code == 202


async def _settled(core: Wired) -> bool:
    return core.live.hub.listener_count == 0
