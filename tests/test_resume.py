"""Resuming a job's event stream: no gap, no duplicate, and a reset for cursors we cannot honour."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import httpx
import msgspec
import pytest
from nats.js import JetStreamContext

from .helpers import SseEvent, Stack, read_sse, submit, wait_for_history_seq
from .oracle import check_timeline, read_timeline

CHATTY = {"steps": ["A", "B", "C", "D"], "step_seconds": 0.4, "ticks_per_step": 8}


# The services this module's tests run against (conftest.py's `stack`).
STACK: dict[str, Any] = dict(with_logsink=False)



async def read_some(client: httpx.AsyncClient, path: str, count: int, headers: dict[str, str]) -> tuple[list[SseEvent], bool]:
    """Read up to `count` events, then drop the connection; True when the stream ended by itself."""
    from httpx_sse import aconnect_sse

    events: list[SseEvent] = []
    async with asyncio.timeout(20), aconnect_sse(client, "GET", path, headers=headers) as source:
        if source.response.status_code == 204:
            return events, True
        async for sse in source.aiter_sse():
            if sse.event == "message" and not sse.data:
                continue
            events.append(SseEvent(sse.event, sse.data, sse.id or None))
            if len(events) >= count:
                return events, False
    return events, True


async def test_random_disconnects_lose_and_repeat_nothing(client: httpx.AsyncClient, js: JetStreamContext,
                                                          stack: Stack) -> None:
    rng = random.Random(7)
    job_id = await submit(client, "demo", CHATTY)
    path = f"/api/jobs/{job_id}/events"
    received: list[SseEvent] = []
    headers: dict[str, str] = {}
    reconnects = 0
    while True:
        events, ended = await read_some(client, path, rng.randint(1, 6), headers)
        received += events
        if ended:
            break
        reconnects += 1
        headers = {"Last-Event-ID": str(received[-1].id)}
    assert reconnects >= 5
    assert received[0].event == "snapshot"
    start = int(received[0].id or 0)
    timeline = await read_timeline(js, stack.names, job_id)
    check_timeline(timeline)
    got = [(int(e.id or 0), e.event) for e in received[1:]]
    assert got == [(r.seq, r.kind) for r in timeline if r.seq > start], "gap or duplicate"
    assert [json.loads(e.data) for e in received[1:]] == [msgspec.to_builtins(r.event) for r in timeline if r.seq > start]


async def test_after_query_parameter_resumes_like_the_header(client: httpx.AsyncClient, js: JetStreamContext,
                                                             stack: Stack) -> None:
    job_id = await submit(client, "demo", {"steps": ["A"], "step_seconds": 0.2, "ticks_per_step": 2})
    await read_sse(client, f"/api/jobs/{job_id}/events")
    timeline = await read_timeline(js, stack.names, job_id)
    middle = timeline[2].seq
    events = await read_sse(client, f"/api/jobs/{job_id}/events?after={middle}")
    assert [int(e.id or 0) for e in events] == [r.seq for r in timeline if r.seq > middle]
    # The header (what EventSource sends on reconnect) wins over the URL's ?after=.
    later = timeline[-2].seq
    events = await read_sse(client, f"/api/jobs/{job_id}/events?after={middle}", headers={"Last-Event-ID": str(later)})
    assert [e.event for e in events] == [timeline[-1].kind]


@pytest.mark.parametrize("cursor", ["abc", "-1", "99999999999999999999999", "1e3", "", "999999"])
async def test_unusable_cursors_get_200_and_a_reset_with_a_fresh_snapshot(client: httpx.AsyncClient, cursor: str) -> None:
    job_id = await submit(client, "demo", {"steps": ["A"], "step_seconds": 0.5, "ticks_per_step": 2})
    events = await read_sse(client, f"/api/jobs/{job_id}/events", headers={"Last-Event-ID": cursor})
    assert events[0].event == "reset"
    assert json.loads(events[0].data)["job"]["id"] == job_id
    assert events[-1].event in ("completed", "reset")


async def test_a_cursor_older_than_the_stream_resumes_from_what_is_kept(client: httpx.AsyncClient, js: JetStreamContext,
                                                                       stack: Stack) -> None:
    old = await submit(client, "noop")
    await read_sse(client, f"/api/jobs/{old}/events")
    job_id = await submit(client, "demo", {"steps": ["A"], "step_seconds": 0.2, "ticks_per_step": 2})
    await read_sse(client, f"/api/jobs/{job_id}/events")
    timeline = await read_timeline(js, stack.names, job_id)
    await wait_for_history_seq(js, stack.names, timeline[-1].seq)
    # The stream drops everything before the job, then the job's own first half too: the cursor
    # (1, another job's event) is long gone, but the history service kept every event of the job.
    await js.purge_stream(stack.names.jobs_stream, seq=timeline[len(timeline) // 2].seq)
    events = await read_sse(client, f"/api/jobs/{job_id}/events", headers={"Last-Event-ID": "1"})
    assert [int(e.id or 0) for e in events] == [r.seq for r in timeline]
    assert [e.event for e in events] == [r.kind for r in timeline]


async def test_heartbeats_and_snapshots_carry_ids_only_where_resuming_is_safe(client: httpx.AsyncClient) -> None:
    job_id = await submit(client, "noop")
    events = await read_sse(client, f"/api/jobs/{job_id}/events")
    assert all(e.id is not None for e in events)
