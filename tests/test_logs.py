"""Log streams: a job's lines with no gap at the history/live seam, surviving the stream's
retention; the services' own logs, live and filtered."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
from httpx_sse import aconnect_sse
from nats.js import JetStreamContext

from jobline.contract.events import LogLineWritten
from jobline.contract.names import LOG
from jobline.processor import JobContext
from jobline.processor.registry import Registry

from .helpers import Stack, eventually, outcome, read_sse, submit
from .oracle import read_timeline

registry = Registry()


@registry.task("chatter")
async def chatter(ctx: JobContext) -> None:
    for i in range(60):
        ctx.log(f"line {i}", level="warning" if i % 10 == 0 else "info")
        await asyncio.sleep(0.02)


# The services this module's tests run against (conftest.py's `stack`).
STACK: dict[str, Any] = dict(registry=registry)



async def stored_count(client: httpx.AsyncClient, job_id: str) -> int:
    return len((await client.get(f"/api/jobs/{job_id}/logs", params={"limit": 5000})).json()["rows"])


async def test_following_a_running_job_gives_every_line_once_across_the_seam(
    client: httpx.AsyncClient, js: JetStreamContext, stack: Stack
) -> None:
    job_id = await submit(client, "chatter")

    async def some_stored() -> bool:
        return await stored_count(client, job_id) >= 10

    await eventually(some_stored, what="the logsink to hold the first lines")
    events = await read_sse(client, f"/api/jobs/{job_id}/logs?follow=1")
    assert events[-1].event == "completed"
    lines = [e for e in events if e.event == "logged"]
    timeline = [r for r in await read_timeline(js, stack.names, job_id) if isinstance(r.event, LogLineWritten)]
    assert [(int(e.id or 0), json.loads(e.data)["message"]) for e in lines] == [(r.seq, r.event.message) for r in timeline]
    # Resume from the middle.
    middle = lines[29].id
    rest = await read_sse(client, f"/api/jobs/{job_id}/logs?follow=1", headers={"Last-Event-ID": str(middle)})
    assert [json.loads(e.data)["message"] for e in rest if e.event == "logged"] == [f"line {i}" for i in range(30, 60)]


async def test_old_lines_come_from_the_logsink_after_the_stream_dropped_them(
    client: httpx.AsyncClient, js: JetStreamContext, stack: Stack
) -> None:
    job_id = await submit(client, "chatter")
    assert outcome(await read_sse(client, f"/api/jobs/{job_id}/events")) == "completed"

    async def all_stored() -> bool:
        return await stored_count(client, job_id) == 60

    await eventually(all_stored, what="the logsink to store every line")
    await js.purge_stream(stack.names.jobs_stream, subject=stack.names.job_event(job_id, LOG))
    events = await read_sse(client, f"/api/jobs/{job_id}/logs?follow=1")
    assert [json.loads(e.data)["message"] for e in events if e.event == "logged"] == [f"line {i}" for i in range(60)]


async def test_the_services_own_logs_stream_live_filtered_by_service_and_level(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    async def events_until(path: str, message: str) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        async with asyncio.timeout(15), aconnect_sse(client, "GET", path) as source:
            async for sse in source.aiter_sse():
                if sse.event == "log":
                    out.append(json.loads(sse.data))
                    if out[-1]["message"] == message:
                        return out
        return out

    # (In this test the three services share one process, so each ships every record: what
    # matters here is the filtering and the live tail, not which service wrote the record.)
    logging.getLogger("jobline.processor.test").warning("an earlier record")
    history = await events_until("/api/logs/stream?service=processor", "an earlier record")
    assert {r["service"] for r in history} == {"processor"}
    live = asyncio.create_task(events_until("/api/logs/stream?service=gateway&level=warning", "a warning <b>as text</b>"))
    # No wait for the tail to open: a record logged before it opens still comes, from the recent history.
    logging.getLogger("jobline.gateway.test").setLevel(logging.INFO)
    logging.getLogger("jobline.gateway.test").info("an info record the filter must drop")
    logging.getLogger("jobline.gateway.test").warning("a warning <b>as text</b>")
    got = await live
    assert got[-1]["message"] == "a warning <b>as text</b>" and got[-1]["level"] == "warning"
    assert all(r["level"] in ("warning", "error", "critical") and r["service"] == "gateway" for r in got)
    assert (await client.get("/api/logs/stream?level=loud")).status_code == 400
    assert (await client.get("/api/logs/stream?service=a.b")).status_code == 400
