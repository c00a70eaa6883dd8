"""`/api/events`: the firehose and chosen jobs over one stream, with resume."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from httpx_sse import aconnect_sse
from nats.js import JetStreamContext

from .helpers import SseEvent, Stack, outcome, read_sse, submit
from .oracle import read_timeline

CHATTY = {"steps": ["A", "B"], "step_seconds": 0.5, "ticks_per_step": 25}


# The services this module's tests run against (conftest.py's `stack`).
STACK: dict[str, Any] = dict(with_logsink=False)



async def collect(client: httpx.AsyncClient, path: str, until: set[str], headers: dict[str, str] | None = None,
                  max_events: int | None = None) -> list[SseEvent]:
    """Read a never-ending stream until every job in `until` has ended (or max_events arrived)."""
    events: list[SseEvent] = []
    pending = set(until)
    async with asyncio.timeout(20), aconnect_sse(client, "GET", path, headers=headers or {}) as source:
        async for sse in source.aiter_sse():
            if sse.event == "message" and not sse.data:
                continue
            events.append(SseEvent(sse.event, sse.data, sse.id or None))
            if sse.event in ("completed", "failed", "cancelled", "expired"):
                pending.discard(json.loads(sse.data)["job_id"])
            if sse.event in ("snapshot", "reset"):
                for job in json.loads(sse.data)["jobs"]:
                    if job["status"] in ("completed", "failed"):
                        pending.discard(job["id"])
            if not pending or (max_events is not None and len(events) >= max_events):
                return events
    return events


async def test_the_firehose_carries_every_job_without_logs_and_with_coalesced_progress(
    client: httpx.AsyncClient, js: JetStreamContext, stack: Stack
) -> None:
    chatty = await submit(client, "demo", CHATTY)
    quick = await submit(client, "noop")
    events = await collect(client, "/api/events", until={chatty, quick})
    assert events[0].event == "snapshot"
    kinds_by_job: dict[str, list[str]] = {}
    for e in events[1:]:
        kinds_by_job.setdefault(json.loads(e.data)["job_id"], []).append(e.event)
    assert "logged" not in kinds_by_job[chatty]
    assert kinds_by_job[chatty][-1] == "completed" and "step_started" in kinds_by_job[chatty]
    stored = [r for r in await read_timeline(js, stack.names, chatty) if r.kind == "progressed"]
    streamed = kinds_by_job[chatty].count("progressed")
    assert 1 <= streamed < len(stored), f"{streamed} of {len(stored)} progress events: not coalesced"
    ids = [int(e.id or 0) for e in events]
    assert ids == sorted(ids)


async def test_a_type_filter_and_one_watched_job_with_its_log_lines(client: httpx.AsyncClient) -> None:
    watched = await submit(client, "demo", {"steps": ["A"], "step_seconds": 0.3, "ticks_per_step": 2})
    events = await collect(client, f"/api/events?jobs={watched}&firehose=0", until={watched})
    snapshot = json.loads(events[0].data)
    assert [j["id"] for j in snapshot["jobs"]] == [watched]
    lines = [json.loads(e.data)["message"] for e in events if e.event == "logged"]
    lines += [line["message"] for line in snapshot["logs"].get(watched, [])]
    assert sorted(lines) == sorted(["A: started", "A: finished"])
    noop = await submit(client, "noop")
    only_noop = await collect(client, "/api/events?type=noop", until={noop})
    assert all(j["type"] == "noop" for j in json.loads(only_noop[0].data)["jobs"])
    assert {json.loads(e.data)["job_id"] for e in only_noop[1:]} <= {noop}
    assert (await client.get("/api/events?jobs=a.b")).status_code == 400


async def test_resuming_the_multiplexed_stream_skips_and_repeats_nothing(client: httpx.AsyncClient,
                                                                         js: JetStreamContext, stack: Stack) -> None:
    job_id = await submit(client, "demo", CHATTY)
    path = f"/api/events?jobs={job_id}&firehose=0"
    first = await collect(client, path, until={job_id}, max_events=8)
    rest = await collect(client, path, until={job_id}, headers={"Last-Event-ID": str(first[-1].id)})
    received = first[1:] + rest
    start = int(first[0].id or 0)
    timeline = [r for r in await read_timeline(js, stack.names, job_id) if r.seq > start]
    assert [(int(e.id or 0), e.event) for e in received] == [(r.seq, r.kind) for r in timeline]
    garbage = await collect(client, path, until={job_id}, headers={"Last-Event-ID": "nonsense"}, max_events=1)
    assert garbage[0].event == "reset"
    assert outcome(await read_sse(client, f"/api/jobs/{job_id}/events")) == "completed"
