"""Queue controls: pause a type, a cluster-wide concurrency limit (also across kill -9), a rate
limit — enforced by the broker, checked from the jobs' own timelines."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
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


async def test_a_concurrency_limit_holds_across_priority_bands(client: httpx.AsyncClient, stack: Stack,
                                                              js: JetStreamContext) -> None:
    # One processor with sixteen slots: were each priority band's queue limited on its own, up to
    # twenty would run.
    assert (await client.put("/api/queues/demo", json={"concurrency": 2})).status_code == 200
    slow = {"type": "demo", "params": {"steps": ["S"], "step_seconds": 0.3, "ticks_per_step": 1}}
    answers = await asyncio.gather(*(client.post("/api/jobs", json={**slow, "priority": i % 10}) for i in range(12)))
    jobs = [a.json()["id"] for a in answers]
    assert set(await ends(client, jobs, timeout=90)) == {"completed"}
    spans = [span for j in jobs for span in attempts(await read_timeline(js, stack.names, j))]
    assert most_at_once(spans) <= 2, spans


def span_of(timeline: list[Recorded]) -> tuple[float, float]:
    [(start, end)] = attempts(timeline)
    return start, end


async def test_a_per_key_limit_lets_key_b_run_while_key_a_waits(client: httpx.AsyncClient, stack: Stack,
                                                               js: JetStreamContext) -> None:
    limited = await client.put("/api/queues/demo", json={"key_concurrency": 1})
    assert limited.status_code == 200 and limited.json()["key_concurrency"] == 1
    slow = {"type": "demo", "params": {"steps": ["S"], "step_seconds": 0.8, "ticks_per_step": 2}}
    user_a = [(await client.post("/api/jobs", json={**slow, "concurrency_key": "user 42"})).json()["id"]
              for _ in range(3)]
    user_b = (await client.post("/api/jobs", json={**slow, "concurrency_key": "user 7"})).json()["id"]
    assert set(await ends(client, [*user_a, user_b])) == {"completed"}
    timelines = {j: await read_timeline(js, stack.names, j) for j in [*user_a, user_b]}
    a_spans = sorted(span_of(timelines[j]) for j in user_a)
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(a_spans)), a_spans
    b_start, _ = span_of(timelines[user_b])
    assert b_start < a_spans[0][1], "key B waited for key A"
    waits = [r.event for j in user_a for r in timelines[j] if r.kind == "waiting"]
    assert waits and all(getattr(w, "reason", "") == "waiting for a concurrency slot: user 42" for w in waits)
    assert "waiting" not in [r.kind for r in timelines[user_b]]
    # A job without a concurrency key counts against its owner's: the limit is per owner then.
    owner_a = [(await client.post("/api/jobs", json={**slow, "owner": "tenant-a"})).json()["id"] for _ in range(2)]
    owner_b = (await client.post("/api/jobs", json={**slow, "owner": "tenant-b"})).json()["id"]
    assert set(await ends(client, [*owner_a, owner_b])) == {"completed"}
    timelines = {j: await read_timeline(js, stack.names, j) for j in [*owner_a, owner_b]}
    a_spans = sorted(span_of(timelines[j]) for j in owner_a)
    assert a_spans[1][0] >= a_spans[0][1], a_spans
    assert span_of(timelines[owner_b])[0] < a_spans[0][1], "owner B waited for owner A"


@pytest.mark.slow
async def test_a_killed_holder_gives_its_owners_slot_back_within_the_ack_wait(
        nats_server: EmbeddedNats, names: Names, tmp_path: Path, js: JetStreamContext) -> None:
    system = System(nats_server.url, names, tmp_path, settings={"JOBLINE_ACK_WAIT_S": "2"})
    try:
        await system.start_all(processors=2, logsink=False)
        async with httpx.AsyncClient(base_url=system.url, timeout=20) as client:
            await client.put("/api/queues/demo", json={"key_concurrency": 1})
            # (jobs of one owner, without a concurrency_key: the per-key limit is a per-owner limit, and
            # they wait in the owner's lane)
            first = (await client.post("/api/jobs", json={**demo(2, 2.0), "owner": "tenant-k"})).json()["id"]
            victim = await started_worker_pid(client, first)
            second = (await client.post("/api/jobs", json={**demo(1, 0.2), "owner": "tenant-k"})).json()["id"]
            killed_at = time.time()
            os.kill(victim, signal.SIGKILL)
            system.forget(system.by_pid(victim))
            assert set(await ends(client, [first, second], timeout=60)) == {"completed"}
            first_timeline = await read_timeline(js, names, first)
            second_timeline = await read_timeline(js, names, second)
            for timeline in (first_timeline, second_timeline):
                check_timeline(timeline)
            # The killed attempt held the key's slot until it died; after that the slot's TTL (the ack
            # wait) gives it back: the other two runs start after the kill and never overlap.
            live = attempts(first_timeline)[1:] + attempts(second_timeline)
            assert len(live) == 2 and most_at_once(live) == 1, live
            assert all(start >= killed_at for start, _ in live)
            second_start = attempts(second_timeline)[0][0]
            # Back within the ack wait (2 s) plus the waiting job's retry (~1 s) — bounded loosely for a
            # busy machine: what matters is that it comes back, not never.
            assert second_start - killed_at < 15, "the dead holder's slot never came back"
    finally:
        await system.stop()
