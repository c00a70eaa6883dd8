"""Queue controls: pause a type, a cluster-wide concurrency limit (also across kill -9), a rate
limit — enforced by the broker, checked from the jobs' own timelines."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext

from jobline.contract.names import Names
from jobline.runtime.embedded_nats import EmbeddedNats

from .helpers import Stack, outcome, read_sse, wait_for_job_type
from .oracle import Recorded, check_timeline, read_timeline
from .processes import System
from .test_faults import demo, started_worker_pid

STACK: dict[str, Any] = dict(with_logsink=False)


@pytest.fixture
async def client(stack: Stack, js: JetStreamContext) -> AsyncIterator[httpx.AsyncClient]:
    await wait_for_job_type(js, stack.names, "demo")
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as http:
        yield http


async def submit_many(client: httpx.AsyncClient, body: dict[str, Any], count: int) -> list[str]:
    answers = await asyncio.gather(*(client.post("/api/jobs", json=body) for _ in range(count)))
    assert all(a.status_code == 202 for a in answers)
    return [a.json()["id"] for a in answers]


async def ends(client: httpx.AsyncClient, job_ids: list[str], timeout: float = 60) -> list[str]:
    return await asyncio.gather(*(_outcome(client, j, timeout) for j in job_ids))


async def _outcome(client: httpx.AsyncClient, job_id: str, timeout: float) -> str:
    return outcome(await read_sse(client, f"/api/jobs/{job_id}/events", timeout=timeout))


def attempts(timeline: list[Recorded]) -> list[tuple[float, float]]:
    """(start, end) of each attempt as the stream stored them. An attempt that never ended (its
    processor was killed) held its slot until the next attempt started."""
    spans: list[tuple[float, float]] = []
    begun: float | None = None
    for record in timeline:
        if record.kind == "started":
            if begun is not None:
                spans.append((begun, record.stored_at))
            begun = record.stored_at
        elif record.kind in ("retrying", "completed", "failed", "cancelled", "expired") and begun is not None:
            spans.append((begun, record.stored_at))
            begun = None
    return spans


def most_at_once(spans: list[tuple[float, float]]) -> int:
    moments = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])  # an end before a start
    running = peak = 0
    for _, step in moments:
        running += step
        peak = max(peak, running)
    return peak


async def test_a_paused_type_takes_submissions_and_starts_none_until_resumed(client: httpx.AsyncClient, stack: Stack,
                                                                           js: JetStreamContext) -> None:
    paused = await client.post("/api/queues/demo/pause")
    assert paused.status_code == 200 and paused.json()["paused"] is True
    held = await submit_many(client, {"type": "demo", "params": {"step_seconds": 0.01}}, 20)
    sentinel = (await client.post("/api/jobs", json={"type": "noop"})).json()["id"]
    assert await _outcome(client, sentinel, 20) == "completed"  # the processor is running, only demo waits
    view = (await client.get("/api/queues/demo")).json()
    assert view["paused"] is True and view["waiting"] == 20 and view["running"] == 0
    for job_id in held:
        assert [r.kind for r in await read_timeline(js, stack.names, job_id)] == ["created"]
    resumed = await client.post("/api/queues/demo/resume")
    assert resumed.json()["paused"] is False
    assert set(await ends(client, held)) == {"completed"}
    listed = {q["type"]: q for q in (await client.get("/api/queues")).json()}
    assert listed["demo"]["waiting"] == 0 and listed["noop"]["paused"] is False


async def test_a_rate_limit_of_5_per_second_is_never_exceeded(client: httpx.AsyncClient, stack: Stack,
                                                             js: JetStreamContext) -> None:
    limited = await client.put("/api/queues/noop", json={"rate_max": 5})
    assert limited.status_code == 200 and limited.json()["rate_max"] == 5
    jobs = await submit_many(client, {"type": "noop"}, 30)
    assert set(await ends(client, jobs)) == {"completed"}
    starts = []
    for job_id in jobs:
        timeline = await read_timeline(js, stack.names, job_id)
        starts += [r.stored_at for r in timeline if r.kind == "started"]
    per_second = Counter(int(t) for t in starts)
    assert max(per_second.values()) <= 5, sorted(per_second.items())
    assert max(starts) - min(starts) >= 4.0  # 30 starts at 5 per second: five windows at least
    lifted = await client.put("/api/queues/noop", json={"rate_max": None})
    assert lifted.json()["rate_max"] is None


@pytest.mark.parametrize("body, status, key", [
    ({"concurrency": 0}, 422, "concurrency"),
    ({"rate_max": -1}, 422, "rate_max"),
    ({"rate_max": 5, "rate_window_s": 0}, 422, "rate_window_s"),
    ({"concurrency": "2"}, 400, None),
    ({"surprise": 1}, 400, None),
])
async def test_bad_limits_are_refused_and_change_nothing(client: httpx.AsyncClient, body: dict[str, Any], status: int,
                                                         key: str | None) -> None:
    answer = await client.put("/api/queues/demo", json=body)
    assert answer.status_code == status and answer.headers["content-type"].startswith("application/problem+json")
    if key is not None:
        assert answer.json()["errors"][0]["key"] == key
    view = (await client.get("/api/queues/demo")).json()
    assert view["concurrency"] is None and view["rate_max"] is None
    assert (await client.post("/api/queues/no-such-type/pause")).status_code == 404


@pytest.mark.slow
async def test_a_concurrency_limit_of_2_holds_over_three_processors_and_a_kill_9(
        nats_server: EmbeddedNats, names: Names, tmp_path: Path, js: JetStreamContext) -> None:
    system = System(nats_server.url, names, tmp_path, settings={"JOBLINE_ACK_WAIT_S": "2"})
    try:
        await system.start_all(processors=3, logsink=False)
        async with httpx.AsyncClient(base_url=system.url, timeout=20) as client:
            limited = await client.put("/api/queues/demo", json={"concurrency": 2})
            assert limited.status_code == 200 and limited.json()["concurrency"] == 2
            jobs = await submit_many(client, demo(2, 0.4), 8)
            victim = await started_worker_pid(client, jobs[0])
            os.kill(victim, signal.SIGKILL)  # its slot is held until the ack wait gives the job to another
            system.forget(system.by_pid(victim))
            assert set(await ends(client, jobs, timeout=90)) == {"completed"}
            spans = []
            for job_id in jobs:
                timeline = await read_timeline(js, names, job_id)
                check_timeline(timeline)
                spans += attempts(timeline)
            assert most_at_once(spans) == 2, spans  # never more, and the limit was reached
            assert len(spans) == 9  # one attempt was killed and run again
    finally:
        await system.stop()
